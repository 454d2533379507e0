"""Each data tool fed the mistakes a new user makes: one line on stderr, exit 1 (data) or 2 (usage),
no traceback, and nothing written, moved or deleted in the user's folders.

The table runs in-process through ``run_cli`` (an unexpected exception would fail the test, as a
traceback would); one case per tool also runs as a real subprocess to check the entry point.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest

from alignshift.apps import compare_froc, demo, eval_froc, make_synthetic_deeplesion, prepare_deeplesion
from alignshift.apps.cli import run_cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = {"make_synthetic_deeplesion": make_synthetic_deeplesion, "prepare_deeplesion": prepare_deeplesion,
         "eval_froc": eval_froc, "compare_froc": compare_froc, "demo": demo}

GOOD = {"file_name": "a/1.png", "thickness": 5.0, "gt_boxes": [[0, 0, 10, 10]],
        "pred_boxes": [[0, 0, 10, 10, 0.9]]}


def _preds(images):
    return json.dumps({"format": "alignshift-predictions/1", "images": images})


@pytest.fixture(scope="module")
def ws(synthetic_root, tmp_path_factory):
    """A user's workspace: their own files, a synthetic release and broken copies of it."""
    ws = tmp_path_factory.mktemp("ws")
    (ws / "mine").mkdir()
    (ws / "mine" / "keep.txt").write_text("keep")
    (ws / "notes.txt").write_text("keep")
    syn = ws / "syn"  # an earlier output of the generator, prepared, with a user's file inside
    shutil.copytree(synthetic_root, syn, ignore=shutil.ignore_patterns("annotations"))
    assert prepare_deeplesion.main(["--data-root", str(syn)]) == 0
    (syn / "Images_png" / "mine.txt").write_text("keep")
    (syn / "annotations" / "mine.txt").write_text("keep")
    header = (syn / "DL_info.csv").read_text().splitlines()[0]
    rows = (syn / "DL_info.csv").read_text().splitlines()[1:]
    for name, text in [("header_only", header + "\n"),
                       ("bad_rows", "\n".join([header, rows[0], rows[1].replace('"-175, 275"', '"abc"'),
                                               rows[2], rows[3].replace(".png,", ".jpg,", 1)]) + "\n"),
                       ("no_slices", "\n".join([header, *rows]) + "\n"),
                       ("empty_csv", ""), ("binary_csv", None)]:
        (ws / name / "Images_png").mkdir(parents=True)
        if text is None:
            (ws / name / "DL_info.csv").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
        else:
            (ws / name / "DL_info.csv").write_text(text)
    (ws / "p").mkdir()
    files = {
        "empty.json": _preds([]), "notjson.json": "{oops", "list.json": "[1, 2]",
        "inverted.json": _preds([{**GOOD, "gt_boxes": [[10, 0, 0, 10]]}]),
        "degenerate.json": _preds([{**GOOD, "gt_boxes": [[5, 5, 5, 9]]}]),
        "thick_abc.json": _preds([{**GOOD, "thickness": "abc"}]),
        "not_object.json": _preds([GOOD, "a/2.png"]),
        "dup.json": _preds([GOOD, GOOD]),
        "no_gt.json": _preds([{k: v for k, v in GOOD.items() if k != "gt_boxes"}]),
        "gt_empty.json": _preds([{**GOOD, "gt_boxes": []}]),
        "good.json": _preds([GOOD]),
        "good2.json": _preds([{**GOOD, "pred_boxes": []}]),
        "other_image.json": _preds([{**GOOD, "file_name": "a/2.png"}]),
        "dup_id.json": _preds([{k: v for k, v in {**GOOD, "img_id": 7}.items() if k != "file_name"}] * 2),
    }
    for name, text in files.items():
        (ws / "p" / name).write_text(text)
    shutil.copy(syn / "annotations" / "deeplesion_train.json", ws / "p" / "ann.json")
    # predictions for the prepared test split (noisy lesions left out, as published)
    with open(syn / "annotations" / "deeplesion_test.json") as f:
        test = json.load(f)
    (ws / "p" / "test_preds.json").write_text(_preds(
        [{"file_name": i["file_name"], "thickness": i["thickness"], "pred_boxes": []}
         for i in test["images"]]))
    (ws / "p" / "stranger.json").write_text(_preds(
        [{"file_name": "999999_01_01/001.png", "thickness": 1.0, "pred_boxes": []}]))
    return ws


def snapshot(root):
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = hashlib.md5(fh.read()).hexdigest()
    return out


A = "mine"
CASES = [
    # make_synthetic_deeplesion: a user's folder is never written, let alone replaced
    ("make_synthetic_deeplesion", ["--out", "."], 1, r"is not empty and was not written by make_synthetic"),
    ("make_synthetic_deeplesion", ["--out", A], 1, r"mine is not empty .* \(it holds keep.txt\)"),
    ("make_synthetic_deeplesion", ["--out", A, "--force"], 1, r"mine is not empty"),
    ("make_synthetic_deeplesion", ["--out", "syn/annotations"], 1,
     r"holds the output of 'prepare_deeplesion'"),
    ("make_synthetic_deeplesion", ["--out", "syn", "--force", "--num-images", "2"], 1,
     r"holds Images_png/mine.txt, which make_synthetic_deeplesion did not write"),
    ("make_synthetic_deeplesion", ["--out", "mine/keep.txt"], 1, r"exists and is not a folder"),
    ("make_synthetic_deeplesion", ["--out", "/proc/alignshift"], 1, r"is not writable"),
    ("make_synthetic_deeplesion", ["--out", "new", "--image-size", "16"], 2, r"--image-size must be >= 64"),
    ("make_synthetic_deeplesion", ["--out", "new", "--num-images", "0"], 2, r"--num-images must be >= 1"),
    ("make_synthetic_deeplesion", ["--out", "new", "--num-images", "ten"], 2, r"invalid int value"),
    ("make_synthetic_deeplesion", [], 2, r"the following arguments are required: --out"),
    # prepare_deeplesion
    ("prepare_deeplesion", [], 1, r"data/DeepLesion/DL_info.csv does not exist \(the default data root"),
    ("prepare_deeplesion", ["--data-root", A], 1, r"mine/DL_info.csv does not exist \(--data-root"),
    ("prepare_deeplesion", ["--data-root", "syn"], 1, r"already holds annotations .* pass --force"),
    ("prepare_deeplesion", ["--data-root", "syn", "--out", A], 1, r"mine is not empty"),
    ("prepare_deeplesion", ["--data-root", "syn", "--out", "."], 1, r"is not empty"),
    ("prepare_deeplesion", ["--data-root", "header_only"], 1, r"no usable rows \(header only\)"),
    ("prepare_deeplesion", ["--data-root", "empty_csv"], 1, r"line 1: expected the 18 DL_info.csv columns"),
    ("prepare_deeplesion", ["--data-root", "binary_csv"], 1, r"(not a text CSV|line 1: expected)"),
    ("prepare_deeplesion", ["--data-root", "bad_rows"], 1,
     r"2 malformed rows: line 3, column DICOM_windows: .*; line 5, column File_name: .*--skip-bad-rows"),
    ("prepare_deeplesion", ["--data-root", "no_slices"], 1, r"nothing usable .* no split has an image"),
    ("prepare_deeplesion", ["--data-rot", "syn"], 2, r"unrecognized arguments: --data-rot"),
    # eval_froc
    ("eval_froc", ["p/nope.json"], 1, r"predictions file .*nope.json does not exist"),
    ("eval_froc", ["p/notjson.json"], 1, r"not a JSON predictions file"),
    ("eval_froc", ["p/list.json"], 1, r"expected a JSON object with \"format\""),
    ("eval_froc", ["p/empty.json"], 1, r"holds no images"),
    ("eval_froc", ["p/inverted.json"], 1, r"images\[0\] \(a/1.png\): gt_boxes\[0\] = .* is inverted"),
    ("eval_froc", ["p/degenerate.json"], 1, r"images\[0\] \(a/1.png\): gt_boxes\[0\] = .* is degenerate"),
    ("eval_froc", ["p/thick_abc.json"], 1, r"'thickness' must be a finite number > 0 \(mm\), got 'abc'"),
    ("eval_froc", ["p/not_object.json"], 1, r"images\[1\] must be an object"),
    ("eval_froc", ["p/dup.json"], 1, r"images\[1\] \(a/1.png\): names the same image as images\[0\]"),
    ("eval_froc", ["p/dup_id.json"], 1, r"images\[1\]: names the same image as images\[0\]"),
    ("eval_froc", ["p/no_gt.json"], 1,
     r"images\[0\] \(a/1.png\) has no 'gt_boxes'.*; pass the annotation file with --gt"),
    ("eval_froc", ["p/gt_empty.json"], 1, r"no ground-truth boxes in any of its 1 images"),
    ("eval_froc", ["p/ann.json"], 1, r"is an annotation file .* not predictions"),
    ("eval_froc", ["p/good.json", "--gt", "p/good.json"], 1,
     r"is a predictions file, not an annotation file"),
    ("eval_froc", ["p/good.json", "--gt", "p/nope.json"], 1, r"annotation file .*nope.json does not exist"),
    ("eval_froc", ["p/good.json", "--gt", "p/ann.json"], 1,
     r"1 predicted images are not in .*ann.json, e.g. a/1.png"),
    ("eval_froc", ["p/stranger.json", "--gt", "syn/annotations/deeplesion_test.json"], 1,
     r"1 predicted images are not in .*deeplesion_test.json, e.g. 999999_01_01/001.png"),
    ("eval_froc", ["p/good.json", "--iou-thr", "1.5"], 2, r"--iou-thr must be in \(0, 1\], got 1.5"),
    ("eval_froc", ["p/good.json", "--iou-thr", "-1"], 2, r"--iou-thr must be in \(0, 1\]"),
    ("eval_froc", ["p/good.json", "--iou-thr", "0"], 2, r"--iou-thr must be in \(0, 1\]"),
    ("eval_froc", ["p/good.json", "--out-dir", A], 1, r"mine is not empty and was not written by eval_froc"),
    ("eval_froc", ["p/good.json", "--out-dir", "notes.txt"], 1, r"exists and is not a folder"),
    ("eval_froc", ["p/good.json", "--iou_thr", "0.5"], 2, r"unrecognized arguments: --iou_thr"),
    # eval_froc: breakdowns, bootstrap and protocol options
    ("eval_froc", ["p/good.json", "--breakdown", "interval:1-2"], 1,
     r"good.json: group interval:1-2 has no lesions in this split"),
    ("eval_froc", ["p/test_preds.json", "--gt", "syn/annotations/deeplesion_test.json", "--breakdown",
                   "type:mediastinum"], 1,
     r"deeplesion_test.json: group type:mediastinum has no lesions in this split"),
    ("eval_froc", ["p/good.json", "--breakdown", "organ"], 2,
     r"--breakdown organ: unknown breakdown 'organ'"),
    ("eval_froc", ["p/good.json", "--breakdown", "type:brain"], 2,
     r"unknown group 'brain' of breakdown type: expected one of bone, abdomen"),
    ("eval_froc", ["p/good.json", "--breakdown", "type"], 1,
     r"images\[0\] \(a/1.png\) has no field 'gt_lesion_type', which the breakdown by lesion type needs; "
     r"pass the annotation file with --gt"),
    ("eval_froc", ["p/good.json", "--bootstrap", "5"], 1,
     r"has no field 'patient', which the patient bootstrap needs; .*--gt .*or --bootstrap 0"),
    ("eval_froc", ["p/good.json", "--bootstrap", "-1"], 2, r"--bootstrap must be >= 0, got -1"),
    ("eval_froc", ["p/good.json", "--level", "95"], 2, r"--level must be in \(0, 1\), got 95"),
    ("eval_froc", ["p/good.json", "--size-bins", "20,10"], 2,
     r"--size-bins: size bin edges must be increasing"),
    ("eval_froc", ["p/good.json", "--interval-bins", "1,two"], 2,
     r"argument --interval-bins: expected comma-separated numbers in mm, got '1,two'"),
    ("eval_froc", ["p/good.json", "--criterion", "dice"], 2, r"argument --criterion: invalid choice: 'dice'"),
    ("eval_froc", ["p/good.json", "--avg", "0.5-8"], 2, r"argument --avg: invalid choice"),
    ("eval_froc", ["p/good.json", "--keep-noisy"], 1, r"has no field 'gt_noisy', which keeping the noisy "),
    ("eval_froc", ["p/test_preds.json", "--gt", "syn/annotations/deeplesion_test.json", "--keep-noisy"], 1,
     r"written without the noisy lesions \(noisy_lesions: excluded\)"),
    # compare_froc
    ("compare_froc", ["p/good.json", "p/nope.json"], 1, r"predictions file .*nope.json does not exist"),
    ("compare_froc", ["p/good.json", "p/good.json"], 2, r"A and B are the same file \(p/good.json\)"),
    ("compare_froc", ["p/good.json", "p/other_image.json"], 1,
     r"image a/1.png of p/good.json is not in p/other_image.json: the two detectors must be evaluated "
     r"on the same images"),
    ("compare_froc", ["p/good.json", "p/dup.json"], 1, r"images\[1\] \(a/1.png\): names the same image"),
    ("compare_froc", ["p/test_preds.json", "p/stranger.json", "--gt", "syn/annotations/deeplesion_test.json"],
     1, r"1 predicted images are not in .*deeplesion_test.json, e.g. 999999_01_01/001.png"),
    ("compare_froc", ["p/good.json", "p/good2.json", "--breakdown", "interval:<=1"], 1,
     r"group interval:<=1 has no lesions in this split"),
    ("compare_froc", ["p/good.json", "p/good2.json", "--bootstrap", "10"], 1,
     r"has no field 'patient', which the paired patient bootstrap needs; .*or --bootstrap 0"),
    ("compare_froc", ["p/good.json", "p/good2.json", "--out-dir", A], 1,
     r"mine is not empty and was not written by compare_froc"),
    ("compare_froc", ["p/good.json", "p/good2.json", "--labels", "x"], 2, r"argument --labels: expected 2"),
    ("compare_froc", ["p/good.json"], 2, r"the following arguments are required: B.json"),
    # the demo hands a user's folder to no destructive step: the generator refuses it, untouched
    ("demo", ["--data-root", A, "--work-dir", "new"], 1, r"mine is not empty and was not written by"),
    ("demo", ["--data-root", ".", "--work-dir", "new"], 1, r"is not empty and was not written by make_synth"),
    ("demo", ["--data-root", "syn/annotations", "--work-dir", "new"], 1, r"output of 'prepare_deeplesion'"),
    ("demo", ["--work-dir", "notes.txt"], 1, r"--work-dir .*notes.txt exists and is not a folder"),
    ("demo", ["--epochs", "0"], 2, r"--epochs must be >= 1"),
]


@pytest.mark.parametrize("tool, argv, code, match", CASES,
                         ids=[f"{c[0]}:{' '.join(c[1]) or '(none)'}" for c in CASES])
def test_bad_input_is_one_line_and_touches_nothing(ws, monkeypatch, capsys, tool, argv, code, match):
    import re

    monkeypatch.chdir(ws)
    monkeypatch.setenv("DEEPLESION_ROOT", "")  # restored afterwards: the demo sets it
    monkeypatch.delenv("DEEPLESION_ROOT")
    monkeypatch.delenv("ALIGNSHIFT_DEBUG", raising=False)
    before = snapshot(ws)
    hints = getattr(TOOLS[tool], "HINTS", None)  # as the tool's cli() passes them
    assert run_cli(TOOLS[tool].main, argv, prog=f"{tool}.py", hints=hints) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"{tool}.py: error: "), err
    assert re.search(match, err[0]), err[0]
    assert snapshot(ws) == before  # nothing written, changed or deleted
    assert not os.path.exists(ws / "new")


def test_env_data_root_is_honoured(ws, monkeypatch, capsys):
    monkeypatch.chdir(ws)
    monkeypatch.setenv("DEEPLESION_ROOT", "mine")
    assert run_cli(prepare_deeplesion.main, [], prog="p") == 1
    assert "mine/DL_info.csv does not exist ($DEEPLESION_ROOT is " in capsys.readouterr().err


@pytest.mark.parametrize("tool, argv, code, match", [
    ("make_synthetic_deeplesion.py", ["--out", "mine"], 1, "mine is not empty and was not written"),
    ("prepare_deeplesion.py", ["--data-root", "bad_rows"], 1, "2 malformed rows"),
    ("eval_froc.py", ["p/inverted.json"], 1, "is inverted"),
    ("compare_froc.py", ["p/good.json", "p/other_image.json"], 1, "is not in p/other_image.json"),
])
def test_entry_points_print_one_line(ws, tool, argv, code, match):
    before = snapshot(ws)
    env = {k: v for k, v in os.environ.items() if k not in ("DEEPLESION_ROOT", "ALIGNSHIFT_DEBUG")}
    p = subprocess.run([sys.executable, os.path.join(ROOT, "tools", tool), *argv], cwd=ws, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == code and "Traceback" not in p.stderr, p.stderr
    assert p.stderr.strip().count("\n") == 0 and match in p.stderr, p.stderr
    assert snapshot(ws) == before
    # --debug shows the traceback of the same mistake
    p = subprocess.run([sys.executable, os.path.join(ROOT, "tools", tool), *argv, "--debug"], cwd=ws,
                       env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode != 0 and "Traceback" in p.stderr and match in p.stderr


def test_success_paths_keep_user_files(ws, tmp_path, monkeypatch, capsys):
    """Outputs next to and inside a user's things: the tools add theirs and remove only their own."""
    work = tmp_path / "work"
    shutil.copytree(ws / "syn", work / "syn")
    (work / "keep.txt").write_text("keep")
    monkeypatch.chdir(work)
    monkeypatch.delenv("DEEPLESION_ROOT", raising=False)
    # a new folder beside a user's file; then replaced with --force beside a user's file inside
    assert run_cli(make_synthetic_deeplesion.main, ["--out", "gen", "--num-images", "2",
                                                    "--image-size", "64"]) == 0
    (work / "gen" / "mine.txt").write_text("keep")
    assert run_cli(make_synthetic_deeplesion.main, ["--out", "gen", "--num-images", "2",
                                                    "--image-size", "64"]) == 0  # reused
    assert run_cli(make_synthetic_deeplesion.main, ["--out", "gen", "--num-images", "3",
                                                    "--image-size", "64", "--force"]) == 0
    assert len((work / "gen" / "DL_info.csv").read_text().splitlines()) > 3
    # prepare --force replaces its own annotations, not the user's file beside them
    assert run_cli(prepare_deeplesion.main, ["--data-root", "syn", "--force"]) == 0
    assert sorted(os.listdir(work / "syn" / "annotations")) == [
        ".alignshift-output.json", "deeplesion_test.json", "deeplesion_train.json", "deeplesion_val.json",
        "mine.txt"]
    # eval_froc --out-dir twice: its report is replaced, a user's file added in between stays
    (work / "p.json").write_text(_preds([GOOD]))
    assert run_cli(eval_froc.main, ["p.json", "--out-dir", "rep"]) == 0
    (work / "rep" / "mine.txt").write_text("keep")
    assert run_cli(eval_froc.main, ["p.json", "--out-dir", "rep", "--breakdown", "interval"]) == 0
    out = capsys.readouterr().out
    assert (f"wrote froc_table.txt, froc.png, froc.json, froc_breakdown.txt, froc_breakdown.md, "
            f"froc_breakdown.json, froc_breakdown.png to {work / 'rep'}") in out
    # an empty group of a full breakdown: "n = 0" and no figure, never 0 % or 100 %
    for text in (out, (work / "rep" / "froc_breakdown.txt").read_text(),
                 (work / "rep" / "froc_breakdown.md").read_text()):
        rows = [ln for ln in text.splitlines() if "<=1 (n = 0)" in ln]
        assert len(rows) == 1 and "0.00" not in rows[0] and "100" not in rows[0], rows
    with open(work / "rep" / "froc_breakdown.json") as f:
        groups = json.load(f)["breakdowns"]["interval"]["groups"]
    assert groups["<=1"] == {"num_lesions": 0, "sens": None, "avg": None}
    assert groups[">3"]["num_lesions"] == 1 and groups[">3"]["avg"] == 1.0
    assert "neighbour slices" in out  # the fall-backs of the synthetic release are counted
    for p in ("keep.txt", "gen/mine.txt", "syn/annotations/mine.txt", "syn/Images_png/mine.txt",
              "rep/mine.txt"):
        assert (work / p).read_text() == "keep", p
