import importlib.util
import os

import numpy as np
import pytest

from alignshift.evaluation import (
    format_froc_table,
    froc,
    froc_breakdown,
    plot_froc,
    sens_at_fps,
)

_spec = importlib.util.spec_from_file_location(
    "bench_froc", os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks", "bench_froc.py"))
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_hand_computed_example():
    gts = [np.array([[0, 0, 9, 9]]), np.array([[20, 20, 29, 29], [50, 50, 59, 59]])]
    preds = [
        np.array([[0, 0, 9, 9, 0.9], [100, 100, 110, 110, 0.8]]),  # hit, FP
        np.array([[20, 20, 29, 29, 0.7], [21, 21, 29, 29, 0.6],   # hit, already hit: neither
                  [200, 200, 210, 210, 0.5]]),                     # FP
    ]
    c = froc(preds, gts)
    np.testing.assert_allclose(c.fps, [0, 0.5, 0.5, 0.5, 1.0])
    np.testing.assert_allclose(c.sens, [1 / 3, 1 / 3, 2 / 3, 2 / 3, 2 / 3])
    np.testing.assert_allclose(sens_at_fps(preds, gts, fps=[0.25, 0.5, 1, 2]),
                               [1 / 3, 2 / 3, 2 / 3, 2 / 3])  # np.interp: last point at 0.5


def test_inclusive_iou_convention():
    gt = [np.array([[0, 0, 9, 9]])]  # 10 x 10 pixels inclusive
    pred = [np.array([[5, 0, 14, 9, 1.0]])]  # inclusive IoU 50/150 = 1/3; modern 45/135
    assert sens_at_fps(pred, gt, fps=[1], iou_thr=0.3)[0] == 1.0
    pred = [np.array([[0, 0, 4, 9, 1.0]])]  # inclusive: 50/100 = 0.5; modern: 36/81 < 0.5
    assert sens_at_fps(pred, gt, fps=[1])[0] == 1.0
    assert sens_at_fps(pred, gt, fps=[1], inclusive=False)[0] == 0.0


def test_ties_form_one_step():
    gts = [np.array([[0, 0, 9, 9]]), np.array([[0, 0, 9, 9]])]
    preds = [np.array([[50, 50, 60, 60, 0.5]]), np.array([[0, 0, 9, 9, 0.5]])]
    c = froc(preds, gts)
    assert len(c.fps) == 1 and c.fps[0] == 0.5 and c.sens[0] == 0.5
    swapped = froc(preds[::-1], gts[::-1])
    np.testing.assert_array_equal(c.sens, swapped.sens)


def test_one_detection_hits_two_lesions_and_duplicates():
    gts = [np.array([[0, 0, 9, 9], [0, 0, 9, 10]])]
    preds = [np.array([[0, 0, 9, 9, 0.9], [0, 0, 9, 9, 0.8], [0, 0, 9, 9, 0.7]])]
    c = froc(preds, gts)
    assert c.sens[0] == 1.0 and np.all(c.fps == 0)


def test_edge_cases():
    empty = np.zeros((0, 5))
    # no detections: zero sensitivity; images without GT only count as images
    np.testing.assert_array_equal(sens_at_fps([empty, empty], [np.zeros((0, 4)), np.array([[0, 0, 5, 5]])]),
                                  np.zeros(6))
    # zero ground truths or zero images: undefined
    assert np.isnan(sens_at_fps([empty], [np.zeros((0, 4))])).all()
    assert np.isnan(sens_at_fps([], [])).all()
    with pytest.raises(ValueError, match="shape"):
        sens_at_fps([np.zeros((2, 4))], [np.zeros((1, 4))])


def random_case(rng, n_img, n_det, quantize):
    preds, gts = [], []
    for _ in range(n_img):
        m = rng.integers(0, 4)
        xy = rng.uniform(0, 60, (m, 2))
        g = np.hstack([xy, xy + rng.uniform(3, 20, (m, 2))])
        k = rng.integers(0, 5)
        if m:
            k = rng.integers(0, n_det + 1)
        d = []
        for _ in range(k):
            if m and rng.random() < 0.6:
                b = g[rng.integers(m)] + rng.normal(0, 2, 4)
            else:
                b = np.concatenate([xy0 := rng.uniform(0, 60, 2), xy0 + rng.uniform(3, 20, 2)])
            b[2:] = np.maximum(b[2:], b[:2])
            d.append(np.append(b, np.round(rng.random(), quantize)))
        preds.append(np.array(d).reshape(-1, 5))
        gts.append(g.reshape(-1, 4))
    return preds, gts


@pytest.mark.parametrize("seed", range(12))
def test_matches_independent_loop(seed):
    rng = np.random.default_rng(seed)
    preds, gts = random_case(rng, n_img=int(rng.integers(1, 40)), n_det=8, quantize=[1, 2, 6][seed % 3])
    for inclusive in (True, False):
        f_loop, s_loop = bench.loop_froc(preds, gts, inclusive=inclusive)
        c = froc(preds, gts, inclusive=inclusive)
        if sum(len(g) for g in gts) == 0:
            continue
        np.testing.assert_allclose(c.fps, f_loop, rtol=0, atol=1e-12)
        np.testing.assert_allclose(c.sens, s_loop, rtol=0, atol=1e-12)
        np.testing.assert_allclose(sens_at_fps(preds, gts, inclusive=inclusive),
                                   bench.loop_sens_at_fps(preds, gts, inclusive=inclusive), atol=1e-12)


def test_subsets_are_their_own_image_sets(tmp_path):
    rng = np.random.default_rng(0)
    preds, gts = random_case(rng, 30, 6, 3)
    thickness = np.where(np.arange(30) % 3 == 0, 5.0, np.where(np.arange(30) % 3 == 1, 2.0, 0.625))
    res = froc_breakdown(preds, gts, thickness)
    thin = thickness <= 2
    for name, sel in (("thin", thin), ("thick", ~thin), ("all", np.ones(30, bool))):
        idx = np.flatnonzero(sel)
        want = bench.loop_sens_at_fps([preds[i] for i in idx], [gts[i] for i in idx])
        np.testing.assert_allclose(res[name]["sens"], want, atol=1e-12)
        assert res[name]["num_images"] == len(idx)
        assert res[name]["avg"] == pytest.approx(np.mean(want[:4]))
    table = format_froc_table(res, title="demo")
    lines = table.splitlines()
    assert lines[0] == "demo" and "Avg.[0.5-4]" in lines[1]
    assert [ln.split("|")[0].strip() for ln in lines[3:]] == ["All", "Thin", "Thick"]
    assert f"{100 * res['thin']['avg']:.2f}" in lines[4]
    png = plot_froc(res, str(tmp_path / "froc.png"))
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="one value per image"):
        froc_breakdown(preds, gts, thickness[:-1])


def _pred_file(tmp_path, images, fmt="alignshift-predictions/1"):
    import json

    path = tmp_path / "preds.json"
    path.write_text(json.dumps({"format": fmt, "images": images}))
    return str(path)


GOOD = {"file_name": "a/1.png", "thickness": 5.0, "gt_boxes": [[0, 0, 10, 10]],
        "pred_boxes": [[0, 0, 10, 10, 0.9], [3, 3, 3, 3, 0.1]]}  # a zero-width detection is valid


def test_predictions_round_trip(tmp_path):
    from alignshift.evaluation import read_predictions, write_predictions

    path = write_predictions([GOOD, {**GOOD, "file_name": "a/2.png", "gt_boxes": []}],
                             str(tmp_path / "p.json"))
    recs = read_predictions(path)
    assert [r.file_name for r in recs] == ["a/1.png", "a/2.png"]
    assert recs[0].pred.shape == (2, 5) and recs[1].gt.shape == (0, 4) and recs[0].thickness == 5.0
    assert os.listdir(tmp_path) == ["p.json"]


@pytest.mark.parametrize("images, match", [
    ([], "holds no images"),
    (["a/1.png"], r"images\[0\] must be an object"),
    ([{**GOOD, "thickness": "abc"}], r"images\[0\] \(a/1.png\): field 'thickness' must be a finite number"),
    ([{**GOOD, "thickness": 0}], "'thickness' must be a finite number > 0"),
    ([{k: v for k, v in GOOD.items() if k != "thickness"}], "'thickness'"),
    ([{**GOOD, "gt_boxes": [[10, 0, 0, 10]]}], r"\(a/1.png\): gt_boxes\[0\] = .* is inverted"),
    ([{**GOOD, "gt_boxes": [[0, 0, 10, 10], [5, 5, 5, 9]]}], r"gt_boxes\[1\] = .* is degenerate"),
    ([{**GOOD, "pred_boxes": [[0, 0, 1, 1, 0.5], [0, 9, 1, 1, 0.5]]}], r"pred_boxes\[1\] = .* is inverted"),
    ([{**GOOD, "pred_boxes": [[0, 0, 1, float("nan"), 0.5]]}], r"pred_boxes\[0\] holds NaN"),
    ([{**GOOD, "pred_boxes": [[1, 2]]}], r"'pred_boxes' must be a list of \[5 numbers\]"),
    ([{k: v for k, v in GOOD.items() if k != "pred_boxes"}], "missing field 'pred_boxes'"),
    ([GOOD, GOOD], r"images\[1\] \(a/1.png\): names the same image as images\[0\]"),
])
def test_predictions_reader_rejects(tmp_path, images, match):
    from alignshift.errors import UserError
    from alignshift.evaluation import PredictionsError, read_predictions

    with pytest.raises(PredictionsError, match=match) as err:
        read_predictions(_pred_file(tmp_path, images))
    assert isinstance(err.value, UserError) and isinstance(err.value, ValueError)


def test_predictions_and_annotation_files_are_told_apart(tmp_path):
    import json

    from alignshift.evaluation import PredictionsError, join_ground_truth, read_predictions

    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"images": [{"id": 1, "file_name": "a/1.png", "thickness": 1.0}],
                               "annotations": [{"image_id": 1, "bbox": [0, 0, 10, 10]}]}))
    with pytest.raises(PredictionsError, match="is an annotation file .* not predictions"):
        read_predictions(str(ann))
    preds = read_predictions(_pred_file(tmp_path, [GOOD]))
    with pytest.raises(PredictionsError, match="is a predictions file, not an annotation file"):
        join_ground_truth(preds, str(tmp_path / "preds.json"))
    recs, without = join_ground_truth(preds, str(ann))
    assert without == 0 and recs[0].thickness == 1.0 and recs[0].gt.tolist() == [[0, 0, 10, 10]]
    ann.write_text(json.dumps({"images": [{"id": 1, "file_name": "a/1.png", "thickness": 1.0}],
                               "annotations": [{"image_id": 1, "bbox": [0, 0, -3, 10]}]}))
    with pytest.raises(PredictionsError, match=r"image a/1.png: boxes\[0\] .* is inverted"):
        join_ground_truth(preds, str(ann))
    with pytest.raises(PredictionsError, match="does not exist"):
        read_predictions(str(tmp_path / "nope.json"))


@pytest.mark.parametrize("thr", [0.0, -1.0, 1.5, float("nan")])
def test_iou_threshold_outside_unit_interval(thr):
    with pytest.raises(ValueError, match=r"iou_thr must be in \(0, 1\]"):
        froc([np.zeros((0, 5))], [np.zeros((1, 4))], iou_thr=thr)
