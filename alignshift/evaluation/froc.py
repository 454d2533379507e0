"""FROC evaluation with the DeepLesion protocol: the one place every reported number comes from.

Protocol. The detections of all images, ``(x1, y1, x2, y2, score)``, are pooled and sorted by
score, descending. Walking down the list, a detection whose IoU with some ground truth of its image
is >= ``iou_thr`` hits every such ground truth not hit yet; one whose best IoU is below the
threshold is a false positive; one that only overlaps already-hit lesions is neither.
Detections with equal scores form one step of the curve. Sensitivity = hits / ground truths,
FPs per image = false positives / images (images without detections count). The sensitivity at an
FP rate is ``np.interp`` on the curve (held at its last value beyond it).

IoU uses the published inclusive-pixel convention (``w = x2 - x1 + 1``) unless
``inclusive=False``. ``criterion="iobb"`` replaces IoU by the intersection over the *detected*
box's area (IoBB, as in NIH's reference evaluation code for DeepLesion).

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

__all__ = ["FROCCurve", "Matches", "froc", "match_detections", "sens_at_fps", "froc_breakdown",
           "format_froc_table", "plot_froc", "summarize", "save_froc_report", "DEFAULT_FPS",
           "AVG_FPS", "MP3D_AVG_FPS", "CRITERIA", "box_overlap"]

DEFAULT_FPS = (0.5, 1, 2, 4, 8, 16)
AVG_FPS = (0.5, 1, 2, 4)
MP3D_AVG_FPS = (0.5, 1, 2, 3, 4, 8)  # MP3D's "mean FROC" (urmagicsmine/MP3D, lesion.py)
CRITERIA = ("iou", "iobb")


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


def box_overlap(det: np.ndarray, gt: np.ndarray, criterion: str = "iou",
                inclusive: bool = True) -> np.ndarray:
    """Element-wise overlap of paired detections det (N, 4+) and ground truths gt (N, 4).

    ``criterion``: ``"iou"`` (intersection over union) or ``"iobb"`` (intersection over the
    detected box's area). Returns (N,).
    """
    if criterion == "iou":
        return box_pair_iou(det, gt, inclusive)
    if criterion != "iobb":
        raise ValueError(f"criterion must be one of {list(CRITERIA)}, got {criterion!r}")
    one = 1.0 if inclusive else 0.0
    iw = np.maximum(np.minimum(det[:, 2], gt[:, 2]) - np.maximum(det[:, 0], gt[:, 0]) + one, 0.0)
    ih = np.maximum(np.minimum(det[:, 3], gt[:, 3]) - np.maximum(det[:, 1], gt[:, 1]) + one, 0.0)
    area = (det[:, 2] - det[:, 0] + one) * (det[:, 3] - det[:, 1] + one)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(area > 0, iw * ih / np.where(area > 0, area, 1.0), 0.0)


@dataclass
class Matches:
    """Every detection and lesion after matching, in score order: what all FROC statistics use.

    Detections are sorted by score, descending (ties in any order: they form one step).
    ``D`` detections, ``L`` lesions (in image order, then in the order of each image's
    ground truth), ``G`` steps of equal score.

    Attributes:
        num_images: number of images, with or without detections.
        det_img: (D,) image of each sorted detection.
        det_fp: (D,) True where the detection overlaps no lesion of its image enough.
        det_step: (D,) the step (group of equal scores) of each sorted detection.
        step_end: (G,) index of the last sorted detection of each step.
        step_score: (G,) the score of each step.
        gt_img: (L,) image of each lesion.
        hit_rank: (L,) sorted index of the first detection that hits the lesion; D if none does.
    """

    num_images: int
    det_img: np.ndarray
    det_fp: np.ndarray
    det_step: np.ndarray
    step_end: np.ndarray
    step_score: np.ndarray
    gt_img: np.ndarray
    hit_rank: np.ndarray

    @property
    def num_dets(self) -> int:
        return len(self.det_img)

    def curve(self) -> FROCCurve:
        """The FROC curve of all images and lesions."""
        n, n_gt, n_img = self.num_dets, len(self.hit_rank), self.num_images
        empty = np.zeros(0)
        if n == 0:
            return FROCCurve(empty, empty, empty, n_img, n_gt)
        new_hits = np.bincount(self.hit_rank[self.hit_rank < n], minlength=n)
        cum_tp, cum_fp = np.cumsum(new_hits)[self.step_end], np.cumsum(self.det_fp)[self.step_end]
        with np.errstate(invalid="ignore", divide="ignore"):
            sens = cum_tp / n_gt if n_gt else np.full(len(self.step_end), np.nan)
            fps = cum_fp / n_img
        return FROCCurve(fps.astype(np.float64), sens.astype(np.float64), self.step_score,
                         n_img, n_gt)


def _stack(arrays: Sequence[np.ndarray], width: int, what: str) -> Tuple[np.ndarray, np.ndarray]:
    counts = np.array([len(a) for a in arrays], np.int64)
    rows = [np.asarray(a, np.float64).reshape(-1, width) if len(a) else np.zeros((0, width))
            for a in arrays]
    for i, r in enumerate(rows):
        if r.shape[1] != width:
            raise ValueError(f"{what}[{i}] must have shape (N, {width}), got {r.shape}")
    return (np.concatenate(rows) if rows else np.zeros((0, width))), counts


def match_detections(pred_boxes: Sequence[np.ndarray], gt_boxes: Sequence[np.ndarray],
                     iou_thr: float = 0.5, inclusive: bool = True, criterion: str = "iou"
                     ) -> Matches:
    """Match detections ``pred_boxes`` (list of (N_i, 5)) to lesions ``gt_boxes`` ((M_i, 4)).

    Vectorised: a lesion is hit by the first detection (in score order) that overlaps it enough,
    and a detection is a false positive exactly when no lesion of its image reaches the
    threshold; see the module docstring for the protocol.
    """
    if len(pred_boxes) != len(gt_boxes):
        raise ValueError(f"{len(pred_boxes)} prediction lists for {len(gt_boxes)} images")
    if not 0 < iou_thr <= 1:  # also catches NaN
        raise ValueError(f"iou_thr must be in (0, 1], got {iou_thr}")
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {list(CRITERIA)}, got {criterion!r}")
    n_img = len(gt_boxes)
    dets, n_det = _stack(pred_boxes, 5, "pred_boxes")
    gts, n_gt = _stack(gt_boxes, 4, "gt_boxes")
    gt_img = np.repeat(np.arange(n_img), n_gt)
    n = len(dets)
    order = np.argsort(-dets[:, 4])  # order inside a tie does not change the curve
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
        match = box_overlap(dets[sel], gts[g], criterion, inclusive) >= iou_thr
        d_idx = np.arange(n)[sel][match]
        is_fp[d_idx] = False
        np.minimum.at(hit_rank, g[match], rank[d_idx])
    scores = dets[order, 4]
    new_step = np.append(True, scores[1:] != scores[:-1]) if n else np.zeros(0, bool)
    det_step = np.cumsum(new_step) - 1
    step_end = np.flatnonzero(np.append(new_step[1:], True)) if n else np.zeros(0, np.int64)
    return Matches(n_img, det_img[order], is_fp[order], det_step, step_end, scores[step_end],
                   gt_img, hit_rank)


def froc(pred_boxes: Sequence[np.ndarray], gt_boxes: Sequence[np.ndarray], iou_thr: float = 0.5,
         inclusive: bool = True, criterion: str = "iou") -> FROCCurve:
    """The FROC curve of detections ``pred_boxes`` (list of (N_i, 5)) vs ``gt_boxes`` ((M_i, 4)).

    Vectorised (:func:`match_detections`): hits and false positives are cumulative sums over
    the sorted detections.
    """
    return match_detections(pred_boxes, gt_boxes, iou_thr, inclusive, criterion).curve()


def sens_at_fps(pred_boxes: Sequence[np.ndarray], gt_boxes: Sequence[np.ndarray],
                fps: Sequence[float] = DEFAULT_FPS, iou_thr: float = 0.5,
                inclusive: bool = True, criterion: str = "iou") -> np.ndarray:
    """Sensitivity at each FP-per-image rate in ``fps`` (see :func:`froc`)."""
    return froc(pred_boxes, gt_boxes, iou_thr, inclusive, criterion).at(fps)


def froc_breakdown(pred_boxes: Sequence[np.ndarray], gt_boxes: Sequence[np.ndarray],
                   thickness: Optional[Sequence[float]] = None, fps: Sequence[float] = DEFAULT_FPS,
                   iou_thr: float = 0.5, inclusive: bool = True, thin_max: float = THIN_MAX_MM,
                   criterion: str = "iou") -> Dict[str, dict]:
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
        curve = froc([pred_boxes[i] for i in idx], [gt_boxes[i] for i in idx], iou_thr, inclusive,
                     criterion)
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
