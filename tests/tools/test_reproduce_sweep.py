"""The thickness sweep's statistics (alignshift/apps/reproduce/sweep.py) and its tables, on made data."""

import json
import math

import numpy as np
import pytest

from alignshift.apps.reproduce.sweep import (
    curve_statistic,
    load_sweep,
    paired_difference,
    save_sweep,
    summarise_sweep,
    two_level,
)
from alignshift.apps.reproduce.sweep_report import (
    claim,
    cross_document,
    percent,
    plot_sweep,
    render_cross,
    render_sweep,
    sweep_document,
)
from alignshift.data.thickness_benchmark import SWEEP_INTERVALS, BenchmarkSpec, make_thickness_benchmark
from alignshift.errors import UserError
from alignshift.evaluation import read_ground_truth, write_predictions

IV = np.array(SWEEP_INTERVALS)


def test_curve_statistics():
    avg = np.array([0.9, 0.9, 0.9, 0.9, 0.8, 0.8, 0.7, 0.6])
    assert curve_statistic("gap", IV, avg) == pytest.approx(0.3)
    assert curve_statistic("level", IV, avg) == pytest.approx(avg.mean())
    assert curve_statistic("slope", IV, 0.5 - 0.02 * IV) == pytest.approx(-0.02)
    # batched over leading axes: (seeds, resamples, intervals)
    assert curve_statistic("gap", IV, np.broadcast_to(avg, (3, 5, 8))).shape == (3, 5)
    with pytest.raises(ValueError, match="unknown statistic"):
        curve_statistic("range", IV, avg)


def test_two_levels_add_and_one_seed_leaves_the_seed_level_open():
    rng = np.random.default_rng(0)
    points = np.array([0.80, 0.84, 0.82])
    boots = points[:, None] + rng.normal(0, 0.01, (1, 2000))  # the same resamples for every seed
    e = two_level(points, boots)
    assert e["estimate"] == pytest.approx(0.82)
    assert e["seed_sd"] == [pytest.approx(0.02)]
    assert e["lesion_se"] == pytest.approx(0.01, rel=0.1)
    assert e["seed_se"] == pytest.approx(0.02 / math.sqrt(3))
    lo, hi = e["combined_ci"]
    half = (hi - lo) / 2
    # wider than either level alone, and than the normal interval (few seeds: Student's t)
    assert half > 1.96 * math.sqrt(e["lesion_se"] ** 2 + e["seed_se"] ** 2)
    assert lo < e["lesion_ci"][0] and hi > e["lesion_ci"][1]
    one = two_level(points[:1], boots[:1])
    assert one["combined_ci"] is None and one["seed_se"] is None and one["lesion_ci"][0] < 0.80


def test_paired_difference_of_identical_runs_is_zero():
    rng = np.random.default_rng(1)
    pts, boots = np.array([0.70, 0.705, 0.71]), 0.72 + rng.normal(0, 0.02, (3, 500))
    d = paired_difference(pts, boots, pts, boots)
    assert d["estimate"] == 0 and d["lesion_ci"] == [0, 0] and d["lesion_se"] == 0
    # a shift of A on every resample moves the estimate and not the lesion-sampling spread
    d = paired_difference(pts + 0.05, boots + 0.05, pts, boots)
    assert d["estimate"] == pytest.approx(0.05) and d["lesion_se"] == pytest.approx(0, abs=1e-12)
    assert "excludes zero" in claim("A minus B", d, "level")
    # two seeds apart by 5 points: the seed level alone keeps the same shift from being a claim
    wide = paired_difference(np.array([0.7, 0.75]) + 0.05, boots[:2] + 0.05, np.array([0.7, 0.75]), boots[:2])
    assert "includes zero" in claim("A minus B", wide, "level")


@pytest.fixture(scope="module")
def sweep_bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep") / "bench"
    make_thickness_benchmark(str(root), BenchmarkSpec(num_volumes=8, image_size=64, seed=2, sweep=True))
    return root


def _predictions(root, path, miss_at=(), score=0.9, seed=0):
    """Each lesion found (its own box) except at the intervals ``miss_at``; one false positive per
    image in a corner."""
    ann = root / "benchmark" / "deeplesion_sweep.json"
    rng = np.random.default_rng(seed)
    images = []
    for r in read_ground_truth(str(ann)):
        pred = [[0, 0, 6, 6, float(rng.uniform(0.1, 0.5))]]
        if not any(abs(r["thickness"] - m) < 1e-6 for m in miss_at):
            pred += [list(map(float, g)) + [score] for g in r["gt"]]
        images.append(dict(file_name=r["file_name"], thickness=r["thickness"], patient=r["patient"],
                           pred_boxes=pred))
    write_predictions(images, str(path))
    return str(path), str(ann)


def test_summarise_sweep_pairs_the_intervals(sweep_bench, tmp_path):
    preds, ann = _predictions(sweep_bench, tmp_path / "p.json", miss_at=(5.0,))
    s = summarise_sweep(preds, ann, n_resamples=200)
    assert list(s["intervals"]) == list(SWEEP_INTERVALS)
    assert len(set(s["num_lesions"].tolist())) == 1 and s["num_lesions"][0] > 0  # the same lesions
    assert np.allclose(s["avg"][:-1], 1.0) and s["avg"][-1] == 0.0
    assert s["boot"].shape == (200, 8) and np.allclose(s["boot"][:, -1], 0.0)
    assert curve_statistic("gap", s["intervals"], s["avg"]) == pytest.approx(1.0)
    save_sweep(str(tmp_path / "s.npz"), s)
    back = load_sweep(str(tmp_path / "s.npz"))
    assert str(back["resamples_id"]) == str(s["resamples_id"]) and np.array_equal(back["boot"], s["boot"])
    # another run on the same volumes draws the same resamples
    other = summarise_sweep(*_predictions(sweep_bench, tmp_path / "q.json", seed=3), n_resamples=200)
    assert str(other["resamples_id"]) == str(s["resamples_id"])


def test_a_sweep_whose_lesions_differ_between_intervals_is_refused(sweep_bench, tmp_path):
    preds, ann = _predictions(sweep_bench, tmp_path / "p.json")
    coco = json.loads(open(ann).read())
    coco["annotations"][0]["lesion_id"] = "999999-9"  # one series' lesion renamed
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(coco))
    with pytest.raises(UserError, match="the lesions at .* mm are not those at"):
        summarise_sweep(preds, str(bad), n_resamples=10)


def test_sweep_tables_and_plot(sweep_bench, tmp_path):
    runs = {}
    for v, miss in (("alignshift_3slice", ()), ("tsm_3slice", (4.0, 5.0))):
        runs[v] = [summarise_sweep(*_predictions(sweep_bench, tmp_path / f"{v}{s}.json", miss, seed=s),
                                   n_resamples=100) for s in (0, 1)]
    doc = sweep_document(runs)
    d = doc["comparisons"]["alignshift_3slice - tsm_3slice"]["gap"]
    assert d["estimate"] == pytest.approx(-1.0) and d["combined_ci"] is not None
    md = render_sweep(doc, "status")
    assert "| AlignShift x3 | 2 | 100.00 ±" in md and "## Claims" in md
    assert "AlignShift x3 minus TSM x3, gap (Avg. at <= 2 mm minus Avg. at 5 mm): -100.00 points" in md
    assert percent(doc)["variants"]["tsm_3slice"]["statistics"]["gap"]["estimate"] == pytest.approx(100.0)
    plot_sweep(doc, str(tmp_path / "sweep.png"))
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    cross = render_cross(cross_document({"thin": runs, "thick": {}}), "status")
    assert "## Trained on thin series only" in cross and "transfer loss" in cross
