"""Per-slice 2D detections -> 3D lesion candidates with their extent in voxels and patient mm.

Linking is greedy and deterministic: slices are visited in increasing order; in each, detections
(already thresholded) are taken by decreasing score, and each joins the candidate whose box on the
previous slice overlaps it most (in-plane IoU >= ``iou_thr``), else it starts a new one. A
candidate continues only across adjacent slices; at most one box per slice joins a candidate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Sequence

import numpy as np

from ..boxes import box_iou

__all__ = ["Candidate", "link_detections", "describe_candidate"]


@dataclass
class Candidate:
    """A 3D lesion candidate: one box per slice of ``slices`` (working frame, pixel indices).

    Attributes:
        slices: key-slice indices, consecutive and increasing.
        boxes: ``(len(slices), 4)`` x1, y1, x2, y2 per slice.
        scores: ``(len(slices),)`` the detector's score per slice.
    """

    slices: List[int] = field(default_factory=list)
    boxes: List[np.ndarray] = field(default_factory=list)
    scores: List[float] = field(default_factory=list)

    @property
    def score(self) -> float:
        return float(max(self.scores))

    @property
    def best_index(self) -> int:
        return int(np.argmax(self.scores))


def link_detections(per_slice: Sequence[np.ndarray], slice_indices: Sequence[int], score_thr: float = 0.5,
                    iou_thr: float = 0.3) -> List[Candidate]:
    """Link 2D detections across adjacent slices into 3D candidates.

    Args:
        per_slice: one ``(N, 5)`` array (x1, y1, x2, y2, score) per slice of ``slice_indices``.
        slice_indices: the slice each entry belongs to (increasing).
        score_thr: detections below this score are left out.
        iou_thr: minimum in-plane IoU with the candidate's box on the previous slice.

    Returns:
        candidates sorted by decreasing best score (ties: lower first slice first).
    """
    if len(per_slice) != len(slice_indices):
        raise ValueError(f"{len(per_slice)} detection arrays for {len(slice_indices)} slices")
    done: List[Candidate] = []
    active: List[Candidate] = []
    prev_slice = None
    for k, dets in zip(slice_indices, per_slice):
        dets = np.asarray(dets, np.float64).reshape(-1, 5)
        dets = dets[dets[:, 4] >= score_thr]
        dets = dets[np.argsort(-dets[:, 4], kind="stable")]
        if prev_slice is None or k != prev_slice + 1:
            done.extend(active)
            active = []
        prev_slice = k
        last = np.array([c.boxes[-1] for c in active]).reshape(-1, 4)
        iou = box_iou(dets[:, :4], last) if len(active) else np.zeros((len(dets), 0))
        taken = np.zeros(len(active), bool)
        next_active: List[Candidate] = []
        for i, d in enumerate(dets):
            row = np.where(taken, -1.0, iou[i]) if len(active) else np.zeros(0)
            j = int(np.argmax(row)) if row.size else -1
            if j >= 0 and row[j] >= iou_thr:
                cand = active[j]
                taken[j] = True
            else:
                cand = Candidate()
            cand.slices.append(int(k))
            cand.boxes.append(d[:4].copy())
            cand.scores.append(float(d[4]))
            next_active.append(cand)
        done.extend(c for c, t in zip(active, taken) if not t)
        active = next_active
    done.extend(active)
    return sorted(done, key=lambda c: (-c.score, c.slices[0]))


def describe_candidate(cand: Candidate, volume) -> dict:
    """Extent, best box and RECIST-like axes of ``cand`` in voxels and patient LPS mm.

    ``volume`` is an :class:`alignshift.inference.Volume`. The 3D voxel box is the hull of the
    per-slice boxes; its 8 corners go through the image geometry to the LPS mm box (axis-aligned in
    LPS), the centre of the voxel box to ``center_mm``. ``long_axis_mm`` / ``short_axis_mm`` are the
    longer / shorter side of the largest 2D box (by area in mm^2): the RECIST diameters of a lesion
    whose axes are aligned with the image, and an upper bound otherwise (a box does not carry the
    lesion's angle).
    """
    boxes = np.array(cand.boxes, np.float64).reshape(-1, 4)
    sx, sy = volume.spacing[0], volume.spacing[1]
    w_mm = (boxes[:, 2] - boxes[:, 0] + 1) * sx
    h_mm = (boxes[:, 3] - boxes[:, 1] + 1) * sy
    big = int(np.argmax(w_mm * h_mm))
    best = cand.best_index
    s0, s1 = cand.slices[0], cand.slices[-1]
    x1, y1 = boxes[:, 0].min(), boxes[:, 1].min()
    x2, y2 = boxes[:, 2].max(), boxes[:, 3].max()
    # The box's voxels span [x1 - 0.5, x2 + 0.5] in continuous index; so do the slices.
    corners = np.array([[x, y, z] for x in (x1 - 0.5, x2 + 0.5) for y in (y1 - 0.5, y2 + 0.5)
                        for z in (s0 - 0.5, s1 + 0.5)])
    lps = volume.index_to_lps(corners)
    bx = boxes[best]
    center_idx = np.array([(x1 + x2) / 2, (y1 + y2) / 2, (s0 + s1) / 2])
    center_mm = volume.index_to_lps(center_idx)[0]
    center_input = volume.lps_to_input_index(center_mm[None])[0]
    input_corners = volume.lps_to_input_index(lps)
    return dict(
        score=cand.score,
        slice_start=s0, slice_end=s1, best_slice=cand.slices[best],
        box=[float(v) for v in bx],
        voxel_box=[float(x1), float(y1), float(s0), float(x2), float(y2), float(s1)],
        largest_slice=cand.slices[big], largest_box=[float(v) for v in boxes[big]],
        long_axis_mm=float(max(w_mm[big], h_mm[big])), short_axis_mm=float(min(w_mm[big], h_mm[big])),
        extent_mm=float((s1 - s0 + 1) * volume.slice_interval),
        center_mm=[float(v) for v in center_mm],
        box_mm=[*(float(v) for v in lps.min(0)), *(float(v) for v in lps.max(0))],
        center_input_index=[float(v) for v in center_input],
        input_index_box=[*(float(v) for v in input_corners.min(0) + 0.5),
                         *(float(v) for v in input_corners.max(0) - 0.5)],
        slices=[
            dict(slice=int(k), box=[float(v) for v in b], score=float(s))
            for k, b, s in zip(cand.slices, boxes, cand.scores)
        ],
    )
