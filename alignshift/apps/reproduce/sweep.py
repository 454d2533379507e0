"""The thickness sweep of the synthetic benchmark: per-interval sensitivity, paired over volumes.

Every trained model is tested once on ``benchmark/deeplesion_sweep.json``: each test volume at every
interval of :data:`~alignshift.data.thickness_benchmark.SWEEP_INTERVALS`, same anatomy, same key slice
and the same lesion ids. :func:`summarise_sweep` turns one run's predictions into its Avg. (mean
sensitivity over 0.5-4 FPs per image) at each interval, on the point estimate and on
:data:`RESAMPLES` bootstrap resamples of the **volumes** (a volume brings all its series). The
resamples depend only on the set of volumes and :data:`RESAMPLE_SEED`, so every interval, run, seed
and variant is evaluated on the same resamples: differences between them are paired.

Two levels of variance are kept apart (:func:`two_level`, :func:`paired_difference`):

- **lesion sampling**: the spread of a statistic over the volume resamples (the test split is a
  sample of anatomy), computed on the mean over seeds;
- **seeds**: the spread of the statistic between training seeds, all tested on the same volumes.

They are independent, so the combined variance of a mean over seeds is ``se_lesion**2 + sd_seed**2 /
n_seeds``; the combined 95 % interval uses Student's t with the Welch-Satterthwaite degrees of
freedom of the seed part (the lesion part has many). One seed leaves the seed level unestimated: the
interval then covers lesion sampling only, and the tables say so.

Statistics of a curve ``avg`` over the intervals (the gap is measured on the same lesions at every
interval, a paired design):

- ``gap``: the mean Avg. at the thin intervals (<= 2 mm) minus the Avg. at 5 mm;
- ``slope``: the least-squares slope of Avg. against the interval, per mm;
- ``level``: the mean Avg. over all intervals.

Sensitivities are fractions here; the tables print percentage points.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np

from ...data.deeplesion import THIN_MAX_MM
from ...data.thickness_benchmark import THICK_INTERVAL
from ...errors import UserError
from ...evaluation import AVG_FPS, DEFAULT_FPS, FROCProtocol, load_evalset, match_detections
from ...evaluation.bootstrap import patient_resamples, percentile_interval, weighted_sensitivity
from ...fileio import atomic_path

__all__ = ["RESAMPLES", "RESAMPLE_SEED", "STATISTICS", "summarise_sweep", "save_sweep", "load_sweep",
           "standard_images", "curve_statistic", "two_level", "paired_difference", "check_paired",
           "sweep_stats", "sweep_difference", "sweep_path"]

RESAMPLES = 1000
RESAMPLE_SEED = 0
STATISTICS = ("gap", "slope", "level")
LEVEL = 0.95


def _lesion_ids(ann_file: str) -> Dict[str, List[str]]:
    """file name -> the lesion ids of its annotations, in annotation order."""
    with open(ann_file) as f:
        coco = json.load(f)
    names = {img["id"]: img["file_name"] for img in coco["images"]}
    out: Dict[str, List[str]] = {n: [] for n in names.values()}
    for a in coco["annotations"]:
        if "lesion_id" not in a:
            raise UserError(f"{ann_file}: annotation {a.get('id')} has no 'lesion_id'; expected an "
                            "annotation file of the thickness benchmark (benchmark/*.json)", field="ann_file")
        out[names[a["image_id"]]].append(a["lesion_id"])
    return out


def standard_images(ann_file: str) -> List[str]:
    """The file names of the images of ``ann_file`` marked ``standard`` (a volume's own thin or thick
    series: the test split of Tables 1 and 2)."""
    with open(ann_file) as f:
        return [img["file_name"] for img in json.load(f)["images"] if img.get("standard")]


def summarise_sweep(predictions: str, ann_file: str, n_resamples: int = RESAMPLES,
                    seed: int = RESAMPLE_SEED) -> Dict[str, np.ndarray]:
    """One run's sweep: Avg. and sensitivities at each interval, on the split and on volume resamples.

    Args:
        predictions: ``tools/test.py --out`` of the run on ``ann_file``.
        ann_file: ``benchmark/deeplesion_sweep.json`` (its images carry ``volume`` as ``patient``,
            its annotations ``lesion_id``).

    Returns arrays: ``intervals`` (K,) mm; ``avg`` (K,); ``sens`` (K, R) at
    :data:`~alignshift.evaluation.DEFAULT_FPS`; ``boot`` (B, K) the Avg. of each resample;
    ``num_images``, ``num_lesions`` (K,); ``num_volumes`` (); ``resamples_id`` () a digest of the
    volumes and the resampling seed (equal digests: the same resamples).

    Raises:
        UserError: an interval whose lesion ids differ from another's (the sweep would not be paired).
    """
    data, _ = load_evalset(predictions, ann_file)
    ids = _lesion_ids(ann_file)
    protocol = FROCProtocol()
    m = match_detections(data.pred, data.gt, protocol.iou_thr, protocol.inclusive, protocol.criterion)
    patients = data.require("patient", "the volume bootstrap of the sweep")
    thick = np.round(data.thickness, 4)
    intervals = np.array(sorted(set(thick.tolist())), np.float64)
    lesion_int = thick[data.gt_img]
    lesion_id = np.array([i for n in data.file_names for i in ids[n]], dtype=object)
    if len(lesion_id) != data.num_lesions:
        raise UserError(f"{predictions}: {data.num_lesions} lesions, but {ann_file} names "
                        f"{len(lesion_id)}; expected the predictions of a run on that file")
    first = None
    for dz in intervals:
        here = sorted(lesion_id[lesion_int == dz].tolist())
        if first is None:
            first = (dz, here)
        elif here != first[1]:
            raise UserError(f"{ann_file}: the lesions at {dz:g} mm are not those at {first[0]:g} mm "
                            f"({len(here)} vs {len(first[1])} ids); the sweep must hold the same lesions "
                            "at every interval", field="ann_file")
    w = np.concatenate([np.ones((1, data.num_images), np.int32),
                        patient_resamples(patients, n_resamples, seed)])
    rates = list(DEFAULT_FPS)
    avg_idx = [rates.index(r) for r in AVG_FPS]
    sens = np.zeros((len(intervals), len(rates)))
    boot = np.zeros((n_resamples, len(intervals)))
    for k, dz in enumerate(intervals):
        mask = thick == dz
        s, _ = weighted_sensitivity(m, w, (lesion_int == dz)[None, :], rates, mask)  # (B+1, 1, R)
        sens[k] = s[0, 0]
        boot[:, k] = s[1:, 0, avg_idx].mean(-1)
    vols = np.unique(patients)
    digest = hashlib.sha1(np.asarray(vols, np.int64).tobytes() + f"{n_resamples}/{seed}".encode()).hexdigest()
    return dict(intervals=intervals, avg=sens[:, avg_idx].mean(-1), sens=sens, boot=boot,
                num_images=np.array([int((thick == dz).sum()) for dz in intervals]),
                num_lesions=np.array([int((lesion_int == dz).sum()) for dz in intervals]),
                num_volumes=np.array(len(vols)), resamples_id=np.array(digest))


def save_sweep(path: str, summary: Mapping[str, np.ndarray]) -> str:
    """Write a :func:`summarise_sweep` result to ``path`` (``.npz``; write, then rename)."""
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, **summary)
    return path


def load_sweep(path: str) -> Dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def curve_statistic(name: str, intervals: np.ndarray, avg: np.ndarray) -> np.ndarray:
    """``gap``, ``slope`` or ``level`` (module docstring) of curves ``avg: (..., K)`` at ``intervals``."""
    intervals = np.asarray(intervals, np.float64)
    avg = np.asarray(avg, np.float64)
    if name == "gap":
        thin = intervals <= THIN_MAX_MM + 1e-9
        end = np.isclose(intervals, THICK_INTERVAL)
        if not thin.any() or not end.any():
            raise ValueError(f"the gap needs thin intervals and {THICK_INTERVAL:g} mm, got {intervals}")
        return avg[..., thin].mean(-1) - avg[..., end][..., 0]
    if name == "slope":
        x = intervals - intervals.mean()
        return (avg - avg.mean(-1, keepdims=True)) @ x / (x @ x)
    if name == "level":
        return avg.mean(-1)
    raise ValueError(f"unknown statistic {name!r}; expected one of {STATISTICS}")


def _t_quantile(df: float, level: float) -> float:
    if not math.isfinite(df):
        from statistics import NormalDist

        return NormalDist().inv_cdf(0.5 + level / 2)
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2, df))


def _combine(point: float, boot: np.ndarray, seed_parts: Sequence[Tuple[float, int]],
             level: float) -> dict:
    """Point estimate with its lesion-level, seed-level and combined intervals.

    ``boot``: (B,) the estimate on each volume resample; ``seed_parts``: (sample sd over seeds,
    number of seeds) of each mean that enters the estimate.
    """
    lesion_se = float(np.nanstd(boot, ddof=1)) if len(boot) > 1 else float("nan")
    lo, hi = percentile_interval(boot[:, None], level)[:, 0]
    out = dict(estimate=float(point), lesion_se=lesion_se, lesion_ci=[float(lo), float(hi)],
               seeds=[n for _, n in seed_parts], seed_sd=[float(sd) for sd, _ in seed_parts],
               seed_se=None, combined_ci=None, df=None)
    if all(n >= 2 for _, n in seed_parts):
        parts = [sd * sd / n for sd, n in seed_parts]
        var_seed = float(sum(parts))
        var = lesion_se ** 2 + var_seed
        denom = sum(p * p / (n - 1) for p, (_, n) in zip(parts, seed_parts))
        df = var * var / denom if denom > 0 else float("inf")
        half = _t_quantile(df, level) * math.sqrt(var)
        out.update(seed_se=math.sqrt(var_seed), combined_ci=[point - half, point + half],
                   df=df if math.isfinite(df) else None)
    return out


def two_level(points: np.ndarray, boots: np.ndarray, level: float = LEVEL) -> dict:
    """A variant's mean over seeds of a statistic, with both levels of variance.

    Args:
        points: (S,) the statistic of each seed on the test split.
        boots: (S, B) the statistic of each seed on each (shared) volume resample.

    Returns ``estimate`` (mean over seeds), ``lesion_se`` and ``lesion_ci`` (over the resamples of
    the seed mean), ``seed_sd`` (one entry), ``seed_se``, ``combined_ci`` and ``df`` (None with one
    seed).
    """
    points, boots = np.asarray(points, np.float64), np.asarray(boots, np.float64)
    sd = float(points.std(ddof=1)) if len(points) > 1 else float("nan")
    return _combine(points.mean(), boots.mean(0), [(sd, len(points))], level)


def paired_difference(a_points: np.ndarray, a_boots: np.ndarray, b_points: np.ndarray,
                      b_boots: np.ndarray, level: float = LEVEL) -> dict:
    """``mean(A) - mean(B)`` over seeds, paired over the volume resamples (the same for A and B).

    Seeds of A and B are independent trainings: their seed spreads add. See :func:`two_level`.
    """
    a_points, b_points = np.asarray(a_points, np.float64), np.asarray(b_points, np.float64)
    sd = [float(p.std(ddof=1)) if len(p) > 1 else float("nan") for p in (a_points, b_points)]
    diff_boot = np.asarray(a_boots, np.float64).mean(0) - np.asarray(b_boots, np.float64).mean(0)
    return _combine(a_points.mean() - b_points.mean(), diff_boot,
                    [(sd[0], len(a_points)), (sd[1], len(b_points))], level)


def check_paired(summaries: Sequence[Mapping[str, np.ndarray]], where: Sequence[str]) -> None:
    """Every summary was made on the same volumes, intervals and resamples (else a UserError)."""
    ref = summaries[0]
    for s, w in zip(summaries[1:], where[1:]):
        if str(s["resamples_id"]) != str(ref["resamples_id"]) or not np.array_equal(
                s["intervals"], ref["intervals"]):
            raise UserError(f"{w}: its sweep was tested on other volumes, intervals or resamples than "
                            f"{where[0]}; rerun its test on the same benchmark data")


def sweep_stats(runs: Sequence[Mapping[str, np.ndarray]]) -> dict:
    """A variant's sweep over its seeds: per-interval figures and each statistic with both levels."""
    intervals = runs[0]["intervals"]
    avg = np.stack([r["avg"] for r in runs])  # (S, K)
    boot = np.stack([r["boot"] for r in runs])  # (S, B, K)
    per_interval = [two_level(avg[:, k], boot[:, :, k]) for k in range(len(intervals))]
    stats = {name: two_level(curve_statistic(name, intervals, avg),
                             curve_statistic(name, intervals, boot)) for name in STATISTICS}
    return dict(intervals=[float(x) for x in intervals], seeds=len(runs), per_interval=per_interval,
                seed_curves=[[float(x) for x in row] for row in avg],
                statistics=stats, num_lesions=[int(n) for n in runs[0]["num_lesions"]],
                num_images=[int(n) for n in runs[0]["num_images"]], num_volumes=int(runs[0]["num_volumes"]))


def sweep_difference(a: Sequence[Mapping[str, np.ndarray]], b: Sequence[Mapping[str, np.ndarray]],
                     name: str, sign: float = 1.0) -> dict:
    """Paired difference of statistic ``name`` (times ``sign``) between two variants' runs."""
    iv = a[0]["intervals"]

    def stat(runs, key):
        return sign * curve_statistic(name, iv, np.stack([r[key] for r in runs]))

    return paired_difference(stat(a, "avg"), stat(a, "boot"), stat(b, "avg"), stat(b, "boot"))


def sweep_path(run_dir: str) -> str:
    return os.path.join(run_dir, "sweep.npz")

