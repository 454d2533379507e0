"""Horizontal-flip test-time augmentation for any :data:`~alignshift.inference.Detector`.

The detector runs on the slices and on their mirror images; the mirrored boxes are flipped back
and both sets are merged as mmdet 3's ``DetTTAModel`` merges them (``tools/test.py --tta``, with
``mmdet_plugins.DeepLesionTTAModel``): pooled, greedy NMS with the detector's own test settings
(IoU threshold, ``offset`` of the box-area convention, at most ``max_per_img`` boxes), highest
scores first. ``tests/mmdet_plugins`` checks that both merges agree box for box.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

from .driver import Detector

__all__ = ["flip_boxes", "nms", "merge_flipped", "flip_tta"]


def flip_boxes(boxes: np.ndarray, width: float) -> np.ndarray:
    """Mirror boxes (N, 4+) ``x1, y1, x2, y2, ...`` left-right in an image ``width`` wide.

    ``x -> width - x`` (mmdet's ``bbox_flip``, continuous coordinates); extra columns are kept.
    """
    out = np.array(boxes, np.float64, copy=True)
    out[:, 0], out[:, 2] = width - boxes[:, 2], width - boxes[:, 0]
    return out


def nms(dets: np.ndarray, iou_thr: float, offset: float = 0.0) -> np.ndarray:
    """Greedy NMS of dets (N, 5) ``x1, y1, x2, y2, score``: indices kept, highest score first.

    A box is dropped when its IoU with a kept, higher-scored box exceeds ``iou_thr``; ``offset``
    1 counts box sides as ``x2 - x1 + 1`` (mmcv's ``nms(offset=1)``, the published configs).
    """
    if len(dets) == 0:
        return np.zeros(0, np.int64)
    x1, y1, x2, y2 = (dets[:, i].astype(np.float64) for i in range(4))
    area = (x2 - x1 + offset) * (y2 - y1 + offset)
    order = np.argsort(-dets[:, 4], kind="stable")
    keep: List[int] = []
    while len(order):
        i, rest = order[0], order[1:]
        keep.append(int(i))
        iw = np.maximum(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + offset, 0.0)
        ih = np.maximum(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + offset, 0.0)
        inter = iw * ih
        iou = inter / (area[i] + area[rest] - inter)
        order = rest[iou <= iou_thr]
    return np.array(keep, np.int64)


def merge_flipped(dets: Sequence[np.ndarray], flipped: Sequence[bool], width: float,
                  iou_thr: float = 0.5, max_per_img: int = 50, offset: float = 0.0) -> np.ndarray:
    """Merge the detections of several views of one image, as ``DetTTAModel`` does.

    Args:
        dets: per view (N_v, 5) ``x1, y1, x2, y2, score`` in that view's coordinates.
        flipped: per view, whether it is the left-right mirror image.
        width: the image width the mirrored boxes are flipped back in.
        iou_thr, offset: the NMS of the detector's test settings.
        max_per_img: boxes kept after the merge.

    Returns:
        (M, 5) float32, highest score first, M <= max_per_img.
    """
    parts = [flip_boxes(np.asarray(d, np.float64).reshape(-1, 5), width) if f
             else np.asarray(d, np.float64).reshape(-1, 5) for d, f in zip(dets, flipped)]
    pooled = np.concatenate(parts) if parts else np.zeros((0, 5))
    keep = nms(pooled, iou_thr, offset)[:max_per_img]
    return pooled[keep].astype(np.float32)


class _FlipTTA:
    """The detector of :func:`flip_tta`; takes scale factors when the wrapped detector does."""

    def __init__(self, detector: Detector, iou_thr: float, max_per_img: int, offset: float) -> None:
        self.detector, self.iou_thr, self.max_per_img, self.offset = detector, iou_thr, max_per_img, offset
        self.takes_scale_factor = bool(getattr(detector, "takes_scale_factor", False))

    def __call__(self, images: np.ndarray, thickness: np.ndarray,
                 scale_factors: Optional[np.ndarray] = None) -> List[np.ndarray]:
        mirror = np.ascontiguousarray(images[..., ::-1])
        if self.takes_scale_factor:
            if scale_factors is None:
                scale_factors = np.ones((len(images), 2))
            plain = self.detector(images, thickness, scale_factors)
            mirrored = self.detector(mirror, thickness, scale_factors)
            # boxes in the slice's pixels: flipped back across the slice's width (mmdet's ori_shape)
            widths = [float(round(images.shape[-1] / sx)) for sx in np.asarray(scale_factors)[:, 0]]
        else:
            plain = self.detector(images, thickness)
            mirrored = self.detector(mirror, thickness)
            widths = [float(images.shape[-1])] * len(images)
        return [merge_flipped([a, b], [False, True], w, self.iou_thr, self.max_per_img, self.offset)
                for a, b, w in zip(plain, mirrored, widths)]


def flip_tta(detector: Detector, iou_thr: float = 0.5, max_per_img: int = 50,
             offset: float = 0.0) -> Detector:
    """``detector`` with horizontal-flip test-time augmentation (same call and return).

    ``images: (B, D, H, W)`` are also run mirrored (``[..., ::-1]``) with the same thickness, and
    each image's two sets are merged by :func:`merge_flipped`. Take ``iou_thr``, ``max_per_img``
    and ``offset`` from the detector's test settings (``model.test_cfg.rcnn``) so the merge is
    the one ``tools/test.py --tta`` applies. A detector that takes scale factors (see
    :data:`~alignshift.inference.Detector`) returns boxes in the slice's pixels; they are then
    flipped back and merged there, as ``DetTTAModel`` merges in the original image's pixels.
    """
    return _FlipTTA(detector, iou_thr, max_per_img, offset)
