"""Detection on a volume end to end, and the files it writes.

``detections.json`` (format ``alignshift-volume-detections/1``)::

    {"format": "alignshift-volume-detections/1",
     "source": "/abs/path", "series_uid": "1.2..." | null,
     "geometry": {"working_frame": {"orientation": "LPS", "size": [C, R, S], "origin": [..],
                                    "spacing": [..], "direction": [9 values, row-major]},
                  "input": {"orientation": "RAS", "size": [i, j, k], ...}, "slice_interval_mm": t},
     "preprocess": {"num_slices", "norm_interval", "interpolate", "window", "img_scale", "sampler"},
     "score_thr": 0.5, "link_iou_thr": 0.3, "notes": [...],
     "slices": [{"slice": k, "detections": [[x1, y1, x2, y2, score], ...]}, ...],
     "lesions": [{"lesion_id": 1, "score", "slice_start", "slice_end", "best_slice",
                  "box": [x1, y1, x2, y2] (on best_slice), "voxel_box": [x1, y1, s1, x2, y2, s2],
                  "largest_slice", "largest_box", "long_axis_mm", "short_axis_mm", "extent_mm",
                  "center_mm": [x, y, z] (LPS), "box_mm": [xmin, ymin, zmin, xmax, ymax, zmax] (LPS),
                  "center_input_index": [i, j, k], "input_index_box": [i1, j1, k1, i2, j2, k2],
                  "slices": [{"slice", "box", "score"}, ...]}, ...]}

Voxel coordinates (``x``, ``y``, ``slice``) are 0-based indices of the working frame
(:mod:`alignshift.inference.volume`), with inclusive box ends; ``slices`` lists every detection the
detector returned on every slice run (before ``score_thr``); ``lesions`` are the linked candidates
at or above it, by decreasing score.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass, field
from typing import List, Optional, Sequence

import cv2
import numpy as np
import SimpleITK as sitk

from ..data.deeplesion import window
from ..fileio import atomic_path, atomic_write
from .driver import Detector, PreprocessConfig, run_detector, sampling_notes
from .lesions import describe_candidate, link_detections
from .volume import Volume, label_image

__all__ = ["FORMAT", "CSV_COLUMNS", "VolumeResult", "detect_volume", "result_from_detections",
           "write_detections_json",
           "write_lesions_csv", "write_overlays", "write_mask", "mask_array", "mask_filename",
           "DISPLAY_WINDOW"]

FORMAT = "alignshift-volume-detections/1"
CSV_COLUMNS = ("lesion_id", "score", "slice_start", "slice_end", "best_slice", "x1", "y1", "x2", "y2",
               "center_x_mm", "center_y_mm", "center_z_mm", "long_axis_mm", "short_axis_mm",
               "extent_mm", "num_slices", "largest_slice", "center_i", "center_j", "center_k")
DISPLAY_WINDOW = (-175.0, 275.0)  # soft tissue, for the overlays only


@dataclass
class VolumeResult:
    """Per-slice detections and the 3D candidates of one volume."""

    slices: List[int]
    detections: List[np.ndarray]  # per entry of slices: (N, 5)
    lesions: List[dict]
    score_thr: float
    link_iou_thr: float
    preprocess: PreprocessConfig
    notes: List[str] = field(default_factory=list)


def detect_volume(volume: Volume, detector: Detector, cfg: PreprocessConfig,
                  slices: Optional[Sequence[int]] = None, score_thr: float = 0.5, link_iou_thr: float = 0.3,
                  batch_size: int = 4, progress: bool = True) -> VolumeResult:
    """Run ``detector`` on every key slice (or ``slices``), then link the boxes into candidates.

    Returns a :class:`VolumeResult`; candidates are numbered 1, 2, ... by decreasing score. Its
    ``notes`` are the volume's and :func:`alignshift.inference.sampling_notes`'s.
    """
    keys = list(range(volume.num_slices)) if slices is None else [int(k) for k in slices]
    dets = run_detector(volume.hu, volume.slice_interval, detector, cfg, keys, batch_size, progress)
    return result_from_detections(volume, keys, dets, cfg, score_thr, link_iou_thr)


def result_from_detections(volume: Volume, slices: Sequence[int], detections: Sequence[np.ndarray],
                           cfg: PreprocessConfig, score_thr: float = 0.5, link_iou_thr: float = 0.3
                           ) -> VolumeResult:
    """The :class:`VolumeResult` of per-slice detections made elsewhere: ``detections`` holds one
    ``(N, 5)`` array (``x1, y1, x2, y2, score``, working-frame pixels) per entry of ``slices``; they
    are linked into candidates as :func:`detect_volume` links them."""
    keys = [int(k) for k in slices]
    dets = [np.asarray(d, np.float32).reshape(-1, 5) for d in detections]
    cands = link_detections(dets, keys, score_thr, link_iou_thr)
    lesions = [dict(lesion_id=i, **describe_candidate(c, volume)) for i, c in enumerate(cands, start=1)]
    notes = [*volume.notes, *sampling_notes(volume.num_slices, volume.slice_interval, cfg)]
    return VolumeResult(keys, dets, lesions, score_thr, link_iou_thr, cfg, notes)


def write_detections_json(path: str, volume: Volume, result: VolumeResult) -> None:
    pre = asdict(result.preprocess)
    doc = dict(
        format=FORMAT, source=volume.source, series_uid=volume.series_uid, geometry=volume.geometry(),
        rescale=volume.rescale, preprocess=pre, score_thr=result.score_thr,
        link_iou_thr=result.link_iou_thr, notes=result.notes,
        slices=[dict(slice=k, detections=[[round(float(v), 5) for v in d[:4]] + [round(float(d[4]), 6)]
                                          for d in dets])
                for k, dets in zip(result.slices, result.detections)],
        lesions=result.lesions)
    with atomic_write(path) as f:
        json.dump(doc, f, indent=1)


def write_lesions_csv(path: str, result: VolumeResult) -> None:
    with atomic_write(path, newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for les in result.lesions:
            x1, y1, x2, y2 = les["box"]
            cx, cy, cz = les["center_mm"]
            ci, cj, ck = les["center_input_index"]
            w.writerow([les["lesion_id"], f"{les['score']:.4f}", les["slice_start"], les["slice_end"],
                        les["best_slice"], *(f"{v:.1f}" for v in (x1, y1, x2, y2)),
                        *(f"{v:.2f}" for v in (cx, cy, cz)), f"{les['long_axis_mm']:.2f}",
                        f"{les['short_axis_mm']:.2f}", f"{les['extent_mm']:.2f}", len(les["slices"]),
                        les["largest_slice"], *(f"{v:.2f}" for v in (ci, cj, ck))])


def _overlay(volume: Volume, k: int, boxes: Sequence[tuple], display_window=DISPLAY_WINDOW) -> np.ndarray:
    img = cv2.cvtColor(window(volume.hu[k], display_window).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    scale = max(1, int(round(512 / max(img.shape[:2]))))
    if scale > 1:
        img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    for lesion_id, b, score in boxes:
        x1, y1, x2, y2 = (int(round(v * scale)) for v in b)
        cv2.rectangle(img, (x1, y1), (x2 + scale - 1, y2 + scale - 1), (0, 0, 255), 1)
        cv2.putText(img, f"#{lesion_id} {score:.2f}", (x1, max(y1 - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4, (0, 0, 255), 1, cv2.LINE_AA)
    cv2.putText(img, f"slice {k}", (4, img.shape[0] - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 255, 255), 1,
                cv2.LINE_AA)
    return img


def write_overlays(folder: str, volume: Volume, result: VolumeResult) -> List[str]:
    """One PNG per candidate, on its best slice: ``lesion_<id>_slice_<k>.png``, every candidate box
    on that slice drawn with its id and score (soft-tissue display window). Written to a temporary
    folder renamed into place. Returns the file names."""
    by_slice = {}
    for les in result.lesions:
        for s in les["slices"]:
            by_slice.setdefault(s["slice"], []).append((les["lesion_id"], s["box"], s["score"]))
    names = []
    with atomic_path(folder) as tmp:
        os.makedirs(tmp)
        for les in result.lesions:
            k = les["best_slice"]
            name = f"lesion_{les['lesion_id']:03d}_slice_{k:04d}.png"
            if not cv2.imwrite(os.path.join(tmp, name), _overlay(volume, k, by_slice.get(k, []))):
                raise OSError(f"cannot write {os.path.join(folder, name)}")
            names.append(name)
    return names


def mask_array(volume: Volume, result: VolumeResult) -> np.ndarray:
    """Working-frame ``(S, R, C)`` uint16 labels: each candidate's per-slice boxes filled with its
    ``lesion_id`` (higher scores drawn last, so they win where candidates overlap); 0 elsewhere."""
    labels = np.zeros(volume.hu.shape, np.uint16)
    _, rows, cols = volume.hu.shape
    for les in sorted(result.lesions, key=lambda d: d["score"]):
        for s in les["slices"]:
            x1, y1, x2, y2 = s["box"]
            c1, c2 = max(int(round(x1)), 0), min(int(round(x2)), cols - 1)
            r1, r2 = max(int(round(y1)), 0), min(int(round(y2)), rows - 1)
            if c2 >= c1 and r2 >= r1:
                labels[s["slice"], r1:r2 + 1, c1:c2 + 1] = les["lesion_id"]
    return labels


def mask_filename(source: str) -> str:
    """``lesion_mask`` with the input's container (NIfTI for DICOM series and anything else)."""
    low = source.lower()
    for ext in (".nrrd", ".mha", ".nii.gz", ".nii"):
        if low.endswith(ext):
            return "lesion_mask" + (".nii.gz" if ext == ".nii" else ext)
    return "lesion_mask.nii.gz"


def write_mask(path: str, volume: Volume, result: VolumeResult) -> sitk.Image:
    """The label volume in the input's geometry (same size, origin, spacing, direction)."""
    img = label_image(volume, mask_array(volume, result))
    suffix = ".nii.gz" if path.endswith(".nii.gz") else os.path.splitext(path)[1]
    with atomic_path(path, suffix=suffix) as tmp:
        sitk.WriteImage(img, tmp, useCompression=True)
    return img
