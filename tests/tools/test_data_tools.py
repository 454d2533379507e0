import json
import os
import shutil

import pytest

from alignshift.apps import make_synthetic_deeplesion, prepare_deeplesion
from alignshift.errors import UsageError, UserError


def test_prepare_reports_what_it_skips(synthetic_root, tmp_path, capsys):
    root = tmp_path / "dl"
    shutil.copytree(synthetic_root, root, ignore=shutil.ignore_patterns("annotations"))
    with open(root / "DL_info.csv") as f:
        first = f.readlines()[1]
    series, key = first.split(",")[0].rsplit("_", 1)
    os.remove(root / "Images_png" / series / key)  # a key slice that is missing on disk
    assert prepare_deeplesion.main(["--data-root", str(root), "--out", str(tmp_path / "ann")]) == 0
    out = capsys.readouterr().out
    assert "images whose key slice PNG is missing" in out and f"{series}/{key}" in out
    total = 0
    for split in ("train", "val", "test"):
        with open(tmp_path / "ann" / f"deeplesion_{split}.json") as f:
            ann = json.load(f)
        total += len(ann["images"])
        assert not any(img["file_name"] == f"{series}/{key}" for img in ann["images"])
        for img in ann["images"]:
            assert {"thickness", "spacing", "window", "slice_range"} <= set(img)
        for a in ann["annotations"]:
            assert len(a["recist"]) == 8 and len(a["diameters"]) == 2 and not a["noisy"]
    assert total > 0
    assert not any(p.suffix in (".tmp", ".partial") for p in (tmp_path / "ann").iterdir())
    assert "wrote deeplesion_train.json, deeplesion_val.json, deeplesion_test.json to" in out


def test_prepare_bad_root(tmp_path):
    with pytest.raises(UserError, match="DL_info.csv does not exist"):
        prepare_deeplesion.main(["--data-root", str(tmp_path)])


def test_make_synthetic_cli_reuses(tmp_path, capsys):
    out = str(tmp_path / "syn")
    assert make_synthetic_deeplesion.main(["--out", out, "--num-images", "3", "--image-size", "64"]) == 0
    assert make_synthetic_deeplesion.main(["--out", out, "--num-images", "3"]) == 0
    assert "reusing" in capsys.readouterr().out
    with pytest.raises(UsageError, match="--image-size must be >= 64"):
        make_synthetic_deeplesion.main(["--out", str(tmp_path / "x"), "--image-size", "16"])
    assert not (tmp_path / "x").exists()


def test_prepare_include_noisy_keeps_the_flagged_lesions_and_says_so(synthetic_root, tmp_path):
    """--include-noisy keeps the Possibly_noisy lesions with their flag and records it in info;
    every image carries its Patient_index (the patient bootstrap resamples by it)."""
    import csv

    root = tmp_path / "dl"
    shutil.copytree(synthetic_root, root, ignore=shutil.ignore_patterns("annotations"))
    with open(root / "DL_info.csv", newline="") as f:
        rows = list(csv.reader(f))
    col, split_col = rows[0].index("Possibly_noisy"), rows[0].index("Train_Val_Test")
    test_rows = [r for r in rows[1:] if r[split_col] == "3"]
    flagged = test_rows[0]
    flagged[col] = "1"
    with open(root / "DL_info.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    patients = {r[0]: int(r[rows[0].index("Patient_index")]) for r in rows[1:]}

    def test_split(*opts):
        out = tmp_path / ("ann" + "".join(opts))
        assert prepare_deeplesion.main(["--data-root", str(root), "--out", str(out), *opts]) == 0
        with open(out / "deeplesion_test.json") as f:
            return json.load(f)

    published, kept = test_split(), test_split("--include-noisy")
    assert published["info"]["noisy_lesions"] == "excluded" and kept["info"]["noisy_lesions"] == "kept"
    lines = lambda ann, noisy: sorted(a["csv_line"] for a in ann["annotations"] if a["noisy"] == noisy)  # noqa: E731
    assert lines(published, True) == [] and len(lines(kept, True)) == 1
    assert len(kept["annotations"]) == len(published["annotations"]) + 1
    assert lines(kept, False) == lines(published, False)
    for ann in (published, kept):
        assert all(img["patient"] == patients[img["file_name"].replace("/", "_")] for img in ann["images"])
