"""alignshift.inference.report: the self-contained HTML report, its size policy, and the page in Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile

import numpy as np
import pytest
import SimpleITK as sitk

from alignshift.inference import PreprocessConfig, read_volume, result_from_detections
from alignshift.inference.phantom import ct_phantom, phantom_image
from alignshift.inference.report import WINDOW_PRESETS, display_lut, hu_to_code, write_report

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
LESIONS = {  # id order is score order: (HU, slices, box x1 y1 x2 y2, best slice)
    1: (150.0, range(5, 9), (20, 30, 31, 39), 7),
    2: (-500.0, range(12, 14), (50, 20, 57, 27), 13),
}


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    """A 16-slice scan stored RAS (as many NIfTI writers do) with two cuboid lesions, and the
    detections a perfect detector would give (a score peak on each lesion's best slice)."""
    root = tmp_path_factory.mktemp("report")
    hu = np.full((16, 64, 80), -1000, np.int16)  # working frame (S, R, C)
    hu[:, 10:58, 8:72] = 40
    dets = {k: [] for k in range(16)}
    for lid, (value, slices, (x1, y1, x2, y2), best) in LESIONS.items():
        for k in slices:
            hu[k, y1:y2 + 1, x1:x2 + 1] = value
            dets[k].append([x1, y1, x2, y2, (0.95 if lid == 1 else 0.8) - 0.1 * abs(k - best)])
    img = sitk.GetImageFromArray(hu[:, ::-1, ::-1].copy())  # stored RAS: rows and columns reversed
    img.SetSpacing((0.8, 0.6, 2.5))
    img.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))
    path = root / "scan.nii.gz"
    sitk.WriteImage(img, str(path))
    vol = read_volume(str(path))
    assert np.array_equal(vol.hu, hu)
    keys = list(range(16))
    result = result_from_detections(vol, keys, [np.array(dets[k], np.float32) for k in keys],
                                    PreprocessConfig(num_slices=3))
    assert [(les["lesion_id"], les["best_slice"]) for les in result.lesions] == [(1, 7), (2, 13)]
    report = root / "report.html"
    info = write_report(str(report), vol, result, "alignshift_7slice")
    return vol, result, report, info


def test_report_is_one_offline_file(scan):
    vol, result, report, info = scan
    text = report.read_text(encoding="utf-8")
    assert info.bytes == os.path.getsize(report) and (info.image_format, info.downsample) == ("png", 1)
    assert "lossless (PNG)" in info.statement and info.statement in text.replace("&#x27;", "'")
    # nothing to fetch: images are data URIs, no src / href / url() / @import to anywhere
    assert not re.search(r"""(src|href)\s*=\s*["']?(?!data:)[a-z]+:""", text, re.I)
    assert "url(" not in text and "@import" not in text
    assert "default-src 'none'" in text  # the page's own policy forbids any load
    assert text.count("iVBORw0KGgo") == vol.num_slices  # one inline PNG per slice
    assert "alignshift_7slice" in text and "0.8" in text and "2.500 mm" in text


def test_codes_and_window_tables():
    hu = np.array([-2000, -1024, -160, 40, 240, 1300, 3000], np.float32)
    assert hu_to_code(hu).tolist() == [0, 0, 64, 134, 204, 255, 255]
    soft = display_lut(WINDOW_PRESETS["soft tissue"])
    assert soft[64] == 0 and soft[204] == 255 and soft[134] == 128  # 40 HU mid-window
    lung = display_lut(WINDOW_PRESETS["lung"])
    assert lung[0] == round((-1024 + 1350) / 1500 * 255)


def test_size_limit_picks_webp_then_downsampling(tmp_path):
    hu, _ = ct_phantom(6, 128, noise_hu=20.0, num_lesions=1, seed=3)
    sitk.WriteImage(phantom_image(hu), str(tmp_path / "p.nii.gz"))
    vol = read_volume(str(tmp_path / "p.nii.gz"))
    res = result_from_detections(vol, [0], [np.zeros((0, 5))], PreprocessConfig())
    sizes = {}
    for limit in (10**7, 60_000, 20_000):
        info = write_report(str(tmp_path / f"r{limit}.html"), vol, res, "m", max_bytes=limit)
        assert info.bytes <= limit
        sizes[limit] = (info.image_format, info.downsample)
        assert (f"downsampled {info.downsample}x" in info.statement) == (info.downsample > 1)
    assert sizes[10**7] == ("png", 1) and sizes[60_000] == ("webp", 1) and sizes[20_000][1] >= 2
    with pytest.raises(ValueError, match="does not fit 1000 bytes"):
        write_report(str(tmp_path / "no.html"), vol, res, "m", max_bytes=1000)
    assert not (tmp_path / "no.html").exists()


def _skip_reason():
    for path in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(path):
            return f"{path} is missing (Debian: apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the selenium package is missing (pip install selenium)"
    return None


@pytest.fixture(scope="module")
def browser():
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1280,900"):
        opts.add_argument(arg)
    profile = tempfile.mkdtemp(prefix="alignshift-chromium-")
    opts.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _wait_rendered(driver, slice_, preset="soft tissue"):
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 10).until(lambda d: d.execute_script(
        "const r = window.reportState && window.reportState.rendered;"
        "return r && r.slice === arguments[0] && r.preset === arguments[1];", slice_, preset))


def _pixel(driver, x, y):
    return driver.execute_script(
        "return document.getElementById('view').getContext('2d')"
        ".getImageData(arguments[0], arguments[1], 1, 1).data[0];", x, y)


def test_report_in_chromium_goes_to_a_candidate(scan, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    vol, result, report, _ = scan
    browser.get(report.as_uri())
    _wait_rendered(browser, 7)  # opens on the best candidate's best slice
    soft, lung = display_lut(WINDOW_PRESETS["soft tissue"]), display_lut(WINDOW_PRESETS["lung"])

    browser.find_element(By.CSS_SELECTOR, 'tr.cand[data-lesion="2"]').click()
    _wait_rendered(browser, 13)
    assert browser.find_element(By.ID, "slice").get_attribute("value") == "13"
    assert "slice 13 / 15" in browser.find_element(By.ID, "slice-label").text
    rects = browser.find_elements(By.CSS_SELECTOR, "#boxes rect")
    assert sorted(r.get_attribute("data-lesion") for r in rects) == ["2"]  # lesion 1 ends at slice 8
    (rect,) = rects
    expected = next(s["box"] for s in result.lesions[1]["slices"] if s["slice"] == 13)
    assert json.loads(rect.get_attribute("data-box")) == expected == [50, 20, 57, 27]
    assert rect.get_attribute("class") == "selected" and rect.get_attribute("data-slice") == "13"
    sx, sy = vol.spacing[:2]  # the SVG is in mm: the box sits on the lesion's pixels
    assert float(rect.get_attribute("x")) == pytest.approx(50 * sx) and float(
        rect.get_attribute("height")) == pytest.approx(8 * sy)
    # the canvas shows slice 13: lesion 2's pixels in the soft-tissue window, body elsewhere
    assert _pixel(browser, 53, 23) == soft[hu_to_code(np.float32(-500.0))] == 0
    assert _pixel(browser, 25, 35) == soft[hu_to_code(np.float32(40.0))] == 128
    assert "here" in browser.find_element(By.CSS_SELECTOR, 'tr.cand[data-lesion="2"]').get_attribute("class")

    browser.find_element(By.CSS_SELECTOR, 'button.preset[data-preset="lung"]').click()
    _wait_rendered(browser, 13, "lung")
    assert _pixel(browser, 53, 23) == lung[hu_to_code(np.float32(-500.0))] != 0

    browser.find_element(By.CSS_SELECTOR, 'tr.cand[data-lesion="1"]').click()
    _wait_rendered(browser, 7, "lung")
    ActionChains(browser).send_keys(Keys.ARROW_UP).perform()
    _wait_rendered(browser, 8, "lung")
    browser.execute_script("document.getElementById('viewer').dispatchEvent("
                           "new WheelEvent('wheel', {deltaY: 120, bubbles: true, cancelable: true}));")
    _wait_rendered(browser, 9, "lung")
    assert browser.find_elements(By.CSS_SELECTOR, "#boxes rect") == []  # lesion 1 spans 5-8
    assert _pixel(browser, 25, 35) == lung[hu_to_code(np.float32(40.0))]
    # it fetched nothing: no resource was loaded by the page
    assert browser.execute_script("return performance.getEntriesByType('resource')"
                                  ".filter(e => !e.name.startsWith('data:')).length") == 0
    logs = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert logs == []


def test_docs_screenshot_script(tmp_path, browser):
    """docs/make_report_screenshot.py, the command of docs/inference.md, on a small phantom."""
    import subprocess
    import sys

    import cv2

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = tmp_path / "report.png"
    cmd = [sys.executable, "docs/make_report_screenshot.py", "--out", str(out), "--slices", "40",
           "--size", "128", "--window", "lung"]
    res = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    h, w = cv2.imread(str(out)).shape[:2]
    assert w == 1360 and h > 600  # the viewport of the 1360 x 840 window
