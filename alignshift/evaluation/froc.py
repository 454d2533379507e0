"""FROC evaluation with the DeepLesion protocol: the one place every reported number comes from.

Protocol. The detections of all images, ``(x1, y1, x2, y2, score)``, are pooled and sorted by
score, descending. Walking down the list, a detection whose IoU with some ground truth of its image
is >= ``iou_thr`` hits every such ground truth not hit yet; one whose best IoU is below the
threshold is a false positive; one that only overlaps already-hit lesions is neither.
Detections with equal scores form one step of the curve. Sensitivity = hits / ground truths,
FPs per image = false positives / images (images without detections count). The sensitivity at an
FP rate is ``np.interp`` on the curve (held at its last value beyond it).

IoU uses the published inclusive-pixel convention (``w = x2 - x1 + 1``) unless
``inclusive=False``.

Edge cases: no detections at all gives sensitivity 0 everywhere; images without ground truth
only add to the image count (their detections are false positives); zero ground truths or zero
images make sensitivity undefined and give NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from ..boxes import box_pair_iou
from ..data.deeplesion import THIN_MAX_MM

__all__ = ["FROCCurve", "froc", "sens_at_fps", "froc_breakdown", "format_froc_table",
           "plot_froc", "summarize", "save_froc_report", "DEFAULT_FPS", "AVG_FPS"]

DEFAULT_FPS = (0.5, 1, 2, 4, 8, 16)
AVG_FPS = (0.5, 1, 2, 4)


@dataclass
class FROCCurve:
    """One point per group of equal scores: ``fps`` (FPs per image) and ``sens``."""

    fps: np.ndarray
    sens: np.ndarray
    scores: np.ndarray  # the score of each point's group
    num_images: int
    num_gt: int

    def at(self, fps: Sequence[float] = DEFAULT_FPS) -> np.ndarray:
        """Sensitivity at each FP rate (linear interpolation, held beyond the last point)."""
        target = np.asarray(fps, np.float64)
        if self.num_images == 0 or self.num_gt == 0:
            return np.full(target.shape, np.nan)
        if len(self.fps) == 0:
            return np.zeros(target.shape)
        return np.interp(target, self.fps, self.sens)


def _stack(arrays: Sequence[np.ndarray], width: int, what: str) -> Tuple[np.ndarray, np.ndarray]:
    counts = np.array([len(a) for a in arrays], np.int64)
    rows = [np.asarray(a, np.float64).reshape(-1, width) if len(a) else np.zeros((0, width))
            for a in arrays]
    for i, r in enumerate(rows):
        if r.shape[1] != width:
            raise ValueError(f"{what}[{i}] must have shape (N, {width}), got {r.shape}")
    return (np.concatenate(rows) if rows else np.zeros((0, width))), counts


def froc(pred_boxes: Sequence[np.ndarray], gt_boxes: Sequence[np.ndarray], iou_thr: float = 0.5,
         inclusive: bool = True) -> FROCCurve:
    """The FROC curve of detections ``pred_boxes`` (list of (N_i, 5)) vs ``gt_boxes`` ((M_i, 4)).

    Vectorised: a ground truth is hit by the first detection (in score order) that overlaps it
    enough, and a detection is a false positive exactly when no ground truth of its image
    reaches the threshold, so both counts are cumulative sums over the sorted detections.
    """
    if len(pred_boxes) != len(gt_boxes):
        raise ValueError(f"{len(pred_boxes)} prediction lists for {len(gt_boxes)} images")
    if not 0 < iou_thr <= 1:  # also catches NaN
        raise ValueError(f"iou_thr must be in (0, 1], got {iou_thr}")
    n_img = len(gt_boxes)
    dets, n_det = _stack(pred_boxes, 5, "pred_boxes")
    gts, n_gt = _stack(gt_boxes, 4, "gt_boxes")
    total_gt = int(n_gt.sum())
    empty = np.zeros(0)
    if len(dets) == 0:
        return FROCCurve(empty, empty, empty, n_img, total_gt)

    n = len(dets)
    order = np.argsort(-dets[:, 4])  # order inside a tie group does not change the curve
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    det_img = np.repeat(np.arange(n_img), n_det)
    gt_start = np.cumsum(n_gt) - n_gt
    det_ngt, det_gt0 = n_gt[det_img], gt_start[det_img]

    # Pair every detection with the k-th ground truth of its image, k = 0, 1, ...: a loop over
    # lesions per image (a handful), each step vectorised over all detections.
    is_fp = np.ones(n, bool)
    hit_rank = np.full(len(gts), n, np.int64)  # n: never hit
    for k in range(int(n_gt.max(initial=0))):
        sel = np.flatnonzero(det_ngt > k) if k >= n_gt.min() else slice(None)
        g = det_gt0[sel] + k
        match = box_pair_iou(dets[sel], gts[g], inclusive) >= iou_thr
        d_idx = np.arange(n)[sel][match]
        is_fp[d_idx] = False
        np.minimum.at(hit_rank, g[match], rank[d_idx])
    new_hits = np.bincount(hit_rank[hit_rank < n], minlength=n)
    is_fp = is_fp[order]

    cum_tp, cum_fp = np.cumsum(new_hits), np.cumsum(is_fp)
    scores = dets[order, 4]
    group_end = np.flatnonzero(np.append(scores[1:] != scores[:-1], True))
    with np.errstate(invalid="ignore", divide="ignore"):
        sens = cum_tp[group_end] / total_gt if total_gt else np.full(len(group_end), np.nan)
        fps = cum_fp[group_end] / n_img
    return FROCCurve(fps.astype(np.float64), sens.astype(np.float64), scores[group_end],
                     n_img, total_gt)


def sens_at_fps(pred_boxes: Sequence[np.ndarray], gt_boxes: Sequence[np.ndarray],
                fps: Sequence[float] = DEFAULT_FPS, iou_thr: float = 0.5,
                inclusive: bool = True) -> np.ndarray:
    """Sensitivity at each FP-per-image rate in ``fps`` (see :func:`froc`)."""
    return froc(pred_boxes, gt_boxes, iou_thr, inclusive).at(fps)


def froc_breakdown(pred_boxes: Sequence[np.ndarray], gt_boxes: Sequence[np.ndarray],
                   thickness: Optional[Sequence[float]] = None, fps: Sequence[float] = DEFAULT_FPS,
                   iou_thr: float = 0.5, inclusive: bool = True, thin_max: float = THIN_MAX_MM
                   ) -> Dict[str, dict]:
    """All / thin (<= thin_max mm) / thick subsets, each evaluated as its own image set.

    Returns ``{subset: {"sens": (len(fps),), "avg": mean at AVG_FPS, "curve": FROCCurve,
    "num_images": int, "num_gt": int}}``; without ``thickness`` only ``"all"``.
    """
    subsets = {"all": np.ones(len(gt_boxes), bool)}
    if thickness is not None:
        t = np.asarray(thickness, np.float64)
        if t.shape != (len(gt_boxes),):
            raise ValueError(f"thickness must have one value per image ({len(gt_boxes)}), "
                             f"got shape {t.shape}")
        subsets["thin"], subsets["thick"] = t <= thin_max, t > thin_max
    out = {}
    for name, sel in subsets.items():
        idx = np.flatnonzero(sel)
        curve = froc([pred_boxes[i] for i in idx], [gt_boxes[i] for i in idx], iou_thr, inclusive)
        out[name] = dict(sens=curve.at(fps), avg=float(np.mean(curve.at(AVG_FPS))), curve=curve,
                         num_images=curve.num_images, num_gt=curve.num_gt)
    return out


def format_froc_table(results: Dict[str, dict], fps: Sequence[float] = DEFAULT_FPS,
                      title: str = "") -> str:
    """The paper's table: rows All / Thin / Thick, sensitivities in %, Avg.[0.5,1,2,4], diff vs All."""
    head = ["Subset", "#img", "#les"] + [f"{f:g}" for f in fps] + ["Avg.[0.5-4]", "vs All"]
    lines = [title] if title else []
    lines.append(" | ".join(f"{h:>7}" for h in head))
    lines.append("-" * len(lines[-1]))
    ref = results.get("all", {}).get("avg", np.nan)
    for name in ("all", "thin", "thick"):
        if name not in results:
            continue
        r = results[name]
        diff = "" if name == "all" else f"{100 * (r['avg'] - ref):+.2f}"
        cells = [name.capitalize(), str(r["num_images"]), str(r["num_gt"])]
        cells += [f"{100 * s:.2f}" for s in r["sens"]] + [f"{100 * r['avg']:.2f}", diff]
        lines.append(" | ".join(f"{c:>7}" for c in cells))
    return "\n".join(lines)


def plot_froc(results: Dict[str, dict], path: str, title: str = "FROC") -> str:
    """Write the FROC curves of each subset to a PNG (matplotlib, Agg) and return the path."""
    import os

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=120)
    for name, style in (("all", "k-"), ("thin", "b--"), ("thick", "r-.")):
        if name not in results:
            continue
        c: FROCCurve = results[name]["curve"]
        if len(c.fps):
            ax.plot(np.maximum(c.fps, 1e-3), c.sens, style,
                    label=f"{name} (avg {100 * results[name]['avg']:.1f}%)")
    ax.set_xscale("log", base=2)
    ax.set_xlim(0.125, 32)
    ax.set_xticks(list(DEFAULT_FPS))
    ax.set_xticklabels([f"{f:g}" for f in DEFAULT_FPS])
    ax.set_ylim(0, 1)
    ax.set_xlabel("false positives per image")
    ax.set_ylabel("sensitivity")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def summarize(results: Dict[str, dict]) -> Dict[str, dict]:
    """JSON-ready ``{subset: {"sens": [...], "avg": x, "num_images": n, "num_gt": m}}``."""
    return {k: {"sens": [float(s) for s in v["sens"]], "avg": float(v["avg"]),
                "num_images": int(v["num_images"]), "num_gt": int(v["num_gt"])}
            for k, v in results.items()}


def save_froc_report(results: Dict[str, dict], out_dir: str, title: str = "") -> str:
    """Write ``froc_table.txt``, ``froc.png`` and ``froc.json`` into ``out_dir``; return the table."""
    import json
    import os

    os.makedirs(out_dir, exist_ok=True)
    table = format_froc_table(results, title=title)
    for name, text in (("froc_table.txt", table + "\n"),
                       ("froc.json", json.dumps(summarize(results), indent=1))):
        tmp = os.path.join(out_dir, name + ".tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, os.path.join(out_dir, name))
    plot_froc(results, os.path.join(out_dir, "froc.png"), title=title or "FROC")
    return table
