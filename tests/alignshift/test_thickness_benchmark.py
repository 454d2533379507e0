"""The synthetic thickness benchmark: the sweep, the test split's size, the training subsets."""

import csv
import hashlib
import json
import os
from collections import defaultdict

import numpy as np
import pytest

from alignshift.data import parse_dl_info
from alignshift.data.thickness_benchmark import (
    ANNOTATION_DIR,
    ANNOTATION_FILES,
    LESIONS_CSV,
    SWEEP_CSV,
    SWEEP_INTERVALS,
    BenchmarkSpec,
    lesion_ids_by_image,
    make_thickness_benchmark,
    plan_volumes,
)

SPEC = BenchmarkSpec(num_volumes=6, image_size=64, seed=2, min_test_lesions=10, sweep=True)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("tb") / "sweep"
    make_thickness_benchmark(str(root), SPEC)
    return root


def load(root, name):
    return json.loads((root / ANNOTATION_DIR / ANNOTATION_FILES[name]).read_text())


def digest(root):
    h = hashlib.sha256()
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for f in sorted(files):
            h.update(f.encode())
            h.update(open(os.path.join(dirpath, f), "rb").read())
    return h.hexdigest()


def test_sweep_has_every_test_volume_at_every_interval(bench):
    main = parse_dl_info(str(bench / "DL_info.csv"))
    sweep = parse_dl_info(str(bench / SWEEP_CSV))
    test_volumes = {r.patient for r in main if r.split == 3}
    by_volume = defaultdict(dict)
    for r in sweep:
        assert r.split == 3
        assert r.thickness not in by_volume[r.patient], "one series per interval"
        by_volume[r.patient][r.thickness] = r
    assert set(by_volume) == test_volumes
    for v, series in by_volume.items():
        assert sorted(series) == list(SWEEP_INTERVALS)
        # the same anatomy and key slice: the same lesion boxes and RECIST on every series
        ref = series[5.0]
        for dz, r in series.items():
            assert r.spacing[2] == dz and r.image_size == (64, 64)
            np.testing.assert_allclose([les.box for les in r.lesions], [les.box for les in ref.lesions])
            np.testing.assert_allclose([les.recist for les in r.lesions],
                                       [les.recist for les in ref.lesions])
            # each series covers +-20 mm (whole slices) around the key slice z = 0
            lo, hi = r.slice_range
            assert r.key_slice - lo == hi - r.key_slice == int(np.floor(20 / dz + 1e-9))
            names = sorted(os.listdir(bench / "Images_png" / r.file_name.split("/")[0]))
            assert names == [f"{k:03d}.png" for k in range(lo, hi + 1)]
        # the volume's own thin and thick series stand for their intervals in the sweep
        own = {r.thickness: r.file_name for r in main if r.patient == v}
        assert all(series[dz].file_name == name for dz, name in own.items())


def test_lesion_ids_are_paired_across_intervals(bench):
    ann = load(bench, "sweep")
    ids = lesion_ids_by_image(ann)
    per_interval = defaultdict(list)
    for img in ann["images"]:
        per_interval[img["thickness"]].extend(ids[img["id"]])
        assert all(i.startswith(f"{img['volume']:06d}-") for i in ids[img["id"]])
    assert sorted(per_interval) == list(SWEEP_INTERVALS)
    # the sweep's standard images are the test split of DL_info.csv
    test = {r.file_name for r in parse_dl_info(str(bench / "DL_info.csv")) if r.split == 3}
    assert {img["file_name"] for img in ann["images"] if img["standard"]} == test
    first = sorted(per_interval[0.625])
    assert len(first) == len(set(first)) >= SPEC.min_test_lesions
    assert all(sorted(v) == first for v in per_interval.values())
    # an image's ground truth and its lesion ids are in the same order at every interval
    boxes = defaultdict(dict)
    for a in ann["annotations"]:
        boxes[a["lesion_id"]][a["image_id"]] = a["bbox_xyxy"]
    for per_image in boxes.values():
        assert len(per_image) == len(SWEEP_INTERVALS)
        assert np.ptp(np.array(list(per_image.values())), axis=0).max() == 0
    # lesions.csv lists every row of both CSVs
    with open(bench / LESIONS_CSV, newline="") as f:
        rows = list(csv.DictReader(f))
    assert sum(r["Sweep"] == "1" for r in rows) == len(ann["annotations"])
    n_main = sum(len(r.lesions) for r in parse_dl_info(str(bench / "DL_info.csv")))
    assert sum(r["Standard"] == "1" for r in rows) == n_main


def test_split_sizes_and_training_subsets(bench):
    n_total, n_test = plan_volumes(SPEC)
    main = parse_dl_info(str(bench / "DL_info.csv"))
    assert n_test >= SPEC.min_test_lesions
    assert sum(len(r.lesions) for r in main if r.split == 3 and r.thickness == 5.0) == n_test
    assert {r.patient for r in main} == set(range(1, n_total + 1))
    assert all(r.split == 3 for r in main if r.patient > SPEC.num_volumes)
    # the first num_volumes and their split do not depend on the extra test volumes or the sweep
    plain = make_thickness_benchmark(str(bench.parent / "plain"),
                                     BenchmarkSpec(num_volumes=6, image_size=64, seed=2))
    with open(plain) as f, open(bench / "DL_info.csv") as g:
        assert f.read() == "".join(line for line in g
                                   if not line[:6].isdigit() or int(line[:6]) <= SPEC.num_volumes)
    for r in parse_dl_info(plain):
        series = r.file_name.split("/")[0]
        for k in range(r.slice_range[0], r.slice_range[1] + 1):
            a = bench.parent / "plain" / "Images_png" / series / f"{k:03d}.png"
            assert a.read_bytes() == (bench / "Images_png" / series / f"{k:03d}.png").read_bytes()
    assert json.loads((bench.parent / "plain" / ANNOTATION_DIR / ANNOTATION_FILES["sweep"]).read_text()
                      )["images"] == []
    # cross-thickness training: the training split's thin series, and its thick series
    train = [r for r in main if r.split == 1]
    thin, thick = load(bench, "train_thin"), load(bench, "train_thick")
    assert {i["file_name"] for i in thin["images"]} == {r.file_name for r in train if r.thickness <= 2}
    assert {i["file_name"] for i in thick["images"]} == {r.file_name for r in train if r.thickness == 5}
    assert len(thin["images"]) == len(thick["images"]) == len({r.patient for r in train})
    assert {a["lesion_id"] for a in thin["annotations"]} == {a["lesion_id"] for a in thick["annotations"]}


def test_deterministic_for_a_spec(bench, tmp_path):
    again = tmp_path / "again"
    make_thickness_benchmark(str(again), SPEC)
    assert digest(again) == digest(bench)
    other = tmp_path / "other"
    make_thickness_benchmark(str(other), BenchmarkSpec(**{**SPEC.__dict__, "seed": 3}))
    assert digest(other) != digest(bench)
    assert not os.path.exists(str(again) + ".partial")


def test_bad_spec_names_the_field(tmp_path):
    with pytest.raises(ValueError, match="min_test_lesions must be >= 0, got -1"):
        make_thickness_benchmark(str(tmp_path / "x"), BenchmarkSpec(num_volumes=4, min_test_lesions=-1))
    assert not os.path.exists(tmp_path / "x")
