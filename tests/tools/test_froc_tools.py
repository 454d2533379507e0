"""tools/eval_froc.py and tools/compare_froc.py on small made-up splits: the options reach the
report and its header, the outputs are written, and the paired comparison answers as it should
(identical detectors: difference 0, p = 1; a clearly better one: a small p)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from alignshift.apps import compare_froc, eval_froc
from alignshift.apps.cli import run_cli
from alignshift.evaluation import FROCProtocol, compare_files, evaluate_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
N_IMAGES, PER_PATIENT = 60, 3


def _split(rng):
    """A made-up test split: 60 images of 20 patients, one lesion each (the fourth one noisy)."""
    images, anns = [], []
    for i in range(N_IMAGES):
        x, y = rng.uniform(10, 60, 2)
        size = rng.uniform(5, 40)
        images.append(dict(id=i + 1, file_name=f"{i // PER_PATIENT:06d}_01_01/{i:03d}.png",
                           thickness=[0.8, 1.25, 2.5, 5.0][i % 4], patient=i // PER_PATIENT,
                           spacing=[0.8, 0.8, 1.0]))
        anns.append(dict(id=i + 1, image_id=i + 1, bbox_xyxy=[x, y, x + size, y + size],
                         lesion_type=int(rng.integers(1, 9)), diameters_mm=[size * 0.8, size * 0.5],
                         noisy=i == 3))
    return dict(info=dict(noisy_lesions="kept"), images=images, annotations=anns)


def _detector(ann, p_found, seed):
    """Finds each lesion with probability p_found (score 0.5-1), plus two false positives per image."""
    rng = np.random.default_rng(seed)
    boxes = {a["image_id"]: a["bbox_xyxy"] for a in ann["annotations"]}
    out = []
    for img in ann["images"]:
        pred = [[*boxes[img["id"]], float(rng.uniform(0.5, 1))]] if rng.random() < p_found else []
        pred += [[100, 100, 120, 120, float(rng.uniform(0, 0.6))], [0, 90, 9, 99, float(rng.uniform(0, 0.6))]]
        out.append(dict(file_name=img["file_name"], thickness=img["thickness"], pred_boxes=pred))
    return {"format": "alignshift-predictions/1", "images": out}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("froc")
    ann = _split(np.random.default_rng(0))
    (d / "gt.json").write_text(json.dumps(ann))
    for name, p, seed in (("good", 0.95, 1), ("weak", 0.45, 2)):
        (d / f"{name}.json").write_text(json.dumps(_detector(ann, p, seed)))
    (d / "good_copy.json").write_text((d / "good.json").read_text())
    return d


def test_eval_froc_options_reach_the_report_and_its_header(files, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(files)
    argv = ["good.json", "--gt", "gt.json", "--breakdown", "type,size,interval", "--seed", "3",
            "--level", "0.9", "--keep-noisy", "--criterion", "iobb", "--iou-thr", "0.3", "--avg", "mp3d",
            "--size-bins", "15,30", "--interval-bins", "2", "--out-dir", str(tmp_path / "rep")]
    assert run_cli(eval_froc.main, argv) == 0
    out = capsys.readouterr().out
    head = out.split("\n\n")[0]
    assert "noisy lesions kept" in head and "IoBB (intersection over the detected box) >= 0.3" in head
    assert "Avg.(MP3D) = mean sensitivity at 0.5, 1, 2, 3, 4, 8 FPs" in head
    assert "60 images, 60 lesions, 20 patients" in head  # the noisy lesion is kept
    assert "90 % percentile intervals over 1000 resamples of the patients (with replacement, seed 3)" in head
    for label in ("liver (n = ", "<15 (n = ", "15-30 (n = ", ">=30 (n = ", "<=2 (n = 30)", ">2 (n = 30)"):
        assert label in out, label
    # the tool reports what the core computes with the same options
    protocol = FROCProtocol(noisy="kept", criterion="iobb", iou_thr=0.3, avg="mp3d")
    want = evaluate_file("good.json", "gt.json", protocol=protocol, breakdown="type,size,interval",
                         n_resamples=1000, seed=3, level=0.9, size_bins=(15, 30), interval_bins=(2,))
    with open(tmp_path / "rep" / "froc_breakdown.json") as f:
        got = json.load(f)
    assert got["subsets"] == json.loads(want.to_json())["subsets"]
    assert got["breakdowns"] == json.loads(want.to_json())["breakdowns"]
    assert got["bootstrap"] == dict(unit="patient", resamples=1000, seed=3, level=0.9, method="percentile")
    assert sorted(os.listdir(tmp_path / "rep")) == [
        ".alignshift-output.json", "froc.json", "froc.png", "froc_breakdown.json", "froc_breakdown.md",
        "froc_breakdown.png", "froc_breakdown.txt", "froc_table.txt"]
    md = (tmp_path / "rep" / "froc_breakdown.md").read_text()
    assert "| slice interval (mm) |" in md and "noisy lesions kept" in md
    with open(tmp_path / "rep" / "froc_breakdown.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_eval_froc_defaults_are_the_published_protocol(files, monkeypatch, capsys):
    monkeypatch.chdir(files)
    assert run_cli(eval_froc.main, ["good.json", "--gt", "gt.json"]) == 0
    head = capsys.readouterr().out.split("\n\n")[0]
    assert "noisy lesions excluded (as published); hit: IoU >= 0.5" in head
    assert "59 images, 59 lesions" in head  # the image whose only lesion is noisy is left out
    assert "over 1000 resamples of the patients (with replacement, seed 0)" in head
    assert run_cli(eval_froc.main, ["good.json", "--gt", "gt.json", "--bootstrap", "0"]) == 0
    out = capsys.readouterr().out
    assert "no confidence intervals (--bootstrap 0)" in out and "[" not in out.split("\n\n")[1]


def test_compare_froc_identical_and_clearly_better(files, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(files)
    # identical detectors (two files): difference 0 everywhere, p = 1
    assert run_cli(compare_froc.main, ["good.json", "good_copy.json", "--gt", "gt.json", "--breakdown",
                                       "interval", "--out-dir", str(tmp_path / "same")]) == 0
    with open(tmp_path / "same" / "froc_compare.json") as f:
        same = json.load(f)
    assert same["labels"] == ["good", "good_copy"] and same["bootstrap"]["resamples"] == 1000
    for d in [*same["subsets"].values(), *same["breakdowns"]["interval"]["groups"].values()]:
        assert d["diff_avg"] == 0 and d["p_avg"] == 1 and d["diff_avg_ci"] == [0, 0]
        assert all(v == 0 for v in d["diff"]) and all(p == 1 for p in d["p"])
    # a clearly better detector: a positive difference whose interval excludes 0, a small p
    capsys.readouterr()
    assert run_cli(compare_froc.main, ["good.json", "weak.json", "--gt", "gt.json", "--labels",
                                       "AlignShift", "TSM", "--seed", "1", "--out-dir",
                                       str(tmp_path / "cmp")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("DeepLesion FROC, paired comparison: AlignShift - TSM")
    assert "over 1000 paired resamples of the patients (seed 1)" in out
    with open(tmp_path / "cmp" / "froc_compare.json") as f:
        res = json.load(f)
    d = res["subsets"]["all"]
    assert d["diff_avg"] > 0.3 and d["diff_avg_ci"][0] > 0 and d["p_avg"] <= 0.01
    assert d["diff_avg"] == pytest.approx(d["a_avg"] - d["b_avg"], abs=1e-5)
    # the tool reports what the core computes
    want = compare_files("good.json", "weak.json", "gt.json", labels=("AlignShift", "TSM"), seed=1)
    assert res["subsets"] == json.loads(want.to_json())["subsets"]
    assert sorted(os.listdir(tmp_path / "cmp")) == [".alignshift-output.json", "froc_compare.json",
                                                    "froc_compare.md", "froc_compare.txt"]
    assert (tmp_path / "cmp" / "froc_compare.txt").read_text().strip() == out.split("\nwrote ")[0].strip()
    # again into the same folder: its own output is replaced, a user's file stays
    (tmp_path / "cmp" / "mine.txt").write_text("keep")
    assert run_cli(compare_froc.main, ["weak.json", "good.json", "--gt", "gt.json", "--out-dir",
                                       str(tmp_path / "cmp")]) == 0
    with open(tmp_path / "cmp" / "froc_compare.json") as f:
        rev = json.load(f)
    assert rev["labels"] == ["weak", "good"] and rev["subsets"]["all"]["diff_avg"] < 0
    assert (tmp_path / "cmp" / "mine.txt").read_text() == "keep"


def test_compare_froc_entry_point(files):
    p = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "compare_froc.py"), "good.json",
                        "weak.json", "--gt", "gt.json", "--bootstrap", "200"], cwd=files,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "paired comparison: good - weak" in p.stdout and "p (Avg.)" in p.stdout
