#!/usr/bin/env python
"""Draw docs/report.png: the HTML report of a CT-like phantom, as headless Chromium shows it.

    python docs/make_report_screenshot.py [--out docs/report.png] [--slices 160] [--size 512]
        [--candidate 1] [--window "soft tissue"]

Makes the phantom of :mod:`alignshift.inference.phantom` (its lesions as the candidates, each box
on every slice it crosses: a stand-in for a detector, so the picture shows the report, not a model's
accuracy), writes the report with :func:`alignshift.inference.write_report`, opens it in Debian's
Chromium (``/usr/bin/chromium`` and ``/usr/bin/chromedriver``, driven by Selenium), clicks the
candidate's row, picks the window and saves a screenshot. Takes about half a minute on a CPU.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--window-size=1360,840")


def main() -> None:
    import SimpleITK as sitk
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from alignshift.inference import PreprocessConfig, read_volume, write_report
    from alignshift.inference.phantom import ct_phantom, phantom_image, phantom_result

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "report.png"))
    ap.add_argument("--slices", type=int, default=160)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--candidate", type=int, default=1, help="the candidate whose row is clicked")
    ap.add_argument("--window", default="soft tissue", help="window preset shown")
    args = ap.parse_args()
    for path in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(path):
            sys.exit(f"{path} is missing; on Debian: apt-get install chromium chromium-driver")

    tmp = tempfile.mkdtemp(prefix="alignshift-report-")
    try:
        hu, lesions = ct_phantom(args.slices, args.size, interval_mm=2.5, seed=4)
        scan = os.path.join(tmp, "chest_abdomen.nii.gz")
        sitk.WriteImage(phantom_image(hu), scan)
        vol = read_volume(scan)
        result = phantom_result(vol, lesions, PreprocessConfig(num_slices=7))
        report = os.path.join(tmp, "report.html")
        write_report(report, vol, result, "alignshift_7slice")

        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for flag in FLAGS:
            opts.add_argument(flag)
        opts.add_argument(f"--user-data-dir={os.path.join(tmp, 'profile')}")
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
        try:
            driver.get("file://" + report)
            row = driver.find_element(By.CSS_SELECTOR, f'tr.cand[data-lesion="{args.candidate}"]')
            best = int(row.get_attribute("data-best-slice"))
            row.click()
            driver.find_element(By.CSS_SELECTOR, f'button.preset[data-preset="{args.window}"]').click()
            WebDriverWait(driver, 20).until(lambda d: d.execute_script(
                "const r = window.reportState.rendered;"
                "return r && r.slice === arguments[0] && r.preset === arguments[1];", best, args.window))
            os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
            if not driver.save_screenshot(args.out):
                sys.exit(f"cannot write {args.out}")
        finally:
            driver.quit()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
