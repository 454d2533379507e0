"""Box conventions: IoU, and the anchors and box coder of mmdet 1.0rc1 for the published snapshots.

Boxes are ``(x1, y1, x2, y2)`` pixel corners. DeepLesion's boxes and the published code count a box
``[x1, x2]`` as ``x2 - x1 + 1`` pixels wide (inclusive ends, :data:`INCLUSIVE`); ``inclusive=False``
gives the continuous convention (``x2 - x1``) of torchvision and mmdet 3.

- :func:`box_iou` is pairwise, ``(N, 4) x (M, 4) -> (N, M)``, as in torchvision;
  :func:`box_pair_iou` is element-wise, ``(N, 4) x (N, 4) -> (N,)``. Both numpy.
- mmdet 1.x's anchors are centred on the cell corner as the published anchor head builds them
  (``ctr=(0, 0)``) and rounded; its decoder puts the final corners half a pixel inwards (``+0.5`` /
  ``-0.5``) and clips them to the image minus one pixel. mmdet 3's ``LegacyDeltaXYWHBBoxCoder``
  leaves that half pixel out, so these are written here (torch) and wrapped by
  ``mmdet_plugins/legacy.py``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Optional, Sequence, Tuple

import numpy as np

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["INCLUSIVE", "box_iou", "box_pair_iou", "v1_base_anchors", "v1_delta2bbox", "v1_grid_anchors"]

INCLUSIVE = True  # DeepLesion's pixel convention: a box [x1, x2] is x2 - x1 + 1 pixels wide


def _as_boxes(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a, np.float64)
    if a.size == 0:
        return a.reshape(0, 4)
    if a.ndim != 2 or a.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4), got {a.shape}")
    return a


def box_iou(a: np.ndarray, b: np.ndarray, inclusive: bool = INCLUSIVE) -> np.ndarray:
    """IoU of every box of ``a`` with every box of ``b``.

    Args:
        a (ndarray[N, 4]): boxes x1, y1, x2, y2.
        b (ndarray[M, 4]): boxes x1, y1, x2, y2.
        inclusive: a box ``[x1, x2]`` is ``x2 - x1 + 1`` wide (DeepLesion) or ``x2 - x1``.

    Returns:
        ndarray[N, M]: 0 where the union is empty.
    """
    a, b = _as_boxes(a, "a"), _as_boxes(b, "b")
    one = 1.0 if inclusive else 0.0
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + one
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + one
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a = (a[:, 2] - a[:, 0] + one) * (a[:, 3] - a[:, 1] + one)
    area_b = (b[:, 2] - b[:, 0] + one) * (b[:, 3] - b[:, 1] + one)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def box_pair_iou(a: np.ndarray, b: np.ndarray, inclusive: bool = INCLUSIVE) -> np.ndarray:
    """IoU of each box of ``a`` with the box of ``b`` at the same index.

    Args:
        a (ndarray[N, 4]): boxes x1, y1, x2, y2.
        b (ndarray[N, 4]): boxes x1, y1, x2, y2.
        inclusive: as in :func:`box_iou`.

    Returns:
        ndarray[N]
    """
    one = 1.0 if inclusive else 0.0
    iw = np.maximum(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]) + one, 0.0)
    ih = np.maximum(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]) + one, 0.0)
    inter = iw * ih
    area_a = (a[:, 2] - a[:, 0] + one) * (a[:, 3] - a[:, 1] + one)
    area_b = (b[:, 2] - b[:, 0] + one) * (b[:, 3] - b[:, 1] + one)
    return inter / (area_a + area_b - inter)


def v1_base_anchors(base_size: float, scales: Sequence[float], ratios: Sequence[float],
                    center: Tuple[float, float] = (0.0, 0.0), scale_major: bool = True) -> Tensor:
    """mmdet 1.0rc1's base anchors ``(len(ratios) * len(scales), 4)`` around ``center``.

    Widths ``base * scale / sqrt(ratio)``, heights ``base * scale * sqrt(ratio)``; corners
    ``center -+ (size - 1) / 2``, rounded half to even as ``torch.round`` does (float32, like mmdet
    1.x). With ``scale_major`` the ratio is the outer loop, as in the published RPN.
    """
    import torch

    scales_t = torch.tensor(list(scales), dtype=torch.float32)
    ratios_t = torch.tensor(list(ratios), dtype=torch.float32)
    h_ratios = torch.sqrt(ratios_t)
    w_ratios = 1 / h_ratios
    if scale_major:
        ws = (base_size * w_ratios[:, None] * scales_t[None, :]).reshape(-1)
        hs = (base_size * h_ratios[:, None] * scales_t[None, :]).reshape(-1)
    else:
        ws = (base_size * scales_t[:, None] * w_ratios[None, :]).reshape(-1)
        hs = (base_size * scales_t[:, None] * h_ratios[None, :]).reshape(-1)
    cx, cy = center
    return torch.stack([cx - 0.5 * (ws - 1), cy - 0.5 * (hs - 1),
                        cx + 0.5 * (ws - 1), cy + 0.5 * (hs - 1)], dim=-1).round()


def v1_grid_anchors(base_anchors: Tensor, featmap_size: Tuple[int, int], stride: int) -> Tensor:
    """All anchors ``(H * W * A, 4)``: cell ``(y, x)`` shifts the base anchors by ``stride * (x, y)``;
    the A anchors of cell (0, 0) first, then (0, 1), ... (row-major), as mmdet 1.x orders them."""
    import torch

    h, w = featmap_size
    xs = torch.arange(w, device=base_anchors.device, dtype=base_anchors.dtype) * stride
    ys = torch.arange(h, device=base_anchors.device, dtype=base_anchors.dtype) * stride
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    shifts = torch.stack([xx.reshape(-1), yy.reshape(-1)] * 2, dim=-1)
    return (base_anchors[None] + shifts[:, None]).reshape(-1, 4)


def v1_delta2bbox(rois: Tensor, deltas: Tensor, means: Sequence[float] = (0.0, 0.0, 0.0, 0.0),
                  stds: Sequence[float] = (1.0, 1.0, 1.0, 1.0), max_shape: Optional[Sequence[int]] = None,
                  wh_ratio_clip: float = 16 / 1000) -> Tensor:
    """mmdet 1.0rc1's ``delta2bbox``: rois ``(N, 4)``, deltas ``(N, 4k)`` -> boxes ``(N, 4k)``.

    ``max_shape``: ``(H, W)``; corners are clipped to ``[0, W - 1]`` / ``[0, H - 1]``.
    """
    import torch

    k = deltas.size(1) // 4
    means_t = deltas.new_tensor(list(means)).repeat(1, k)
    stds_t = deltas.new_tensor(list(stds)).repeat(1, k)
    d = deltas * stds_t + means_t
    dx, dy, dw, dh = d[:, 0::4], d[:, 1::4], d[:, 2::4], d[:, 3::4]
    max_ratio = abs(math.log(wh_ratio_clip))
    dw = dw.clamp(min=-max_ratio, max=max_ratio)
    dh = dh.clamp(min=-max_ratio, max=max_ratio)
    px = ((rois[:, 0] + rois[:, 2]) * 0.5).unsqueeze(1).expand_as(dx)
    py = ((rois[:, 1] + rois[:, 3]) * 0.5).unsqueeze(1).expand_as(dy)
    pw = (rois[:, 2] - rois[:, 0] + 1.0).unsqueeze(1).expand_as(dw)
    ph = (rois[:, 3] - rois[:, 1] + 1.0).unsqueeze(1).expand_as(dh)
    gw, gh = pw * dw.exp(), ph * dh.exp()
    gx, gy = px + pw * dx, py + ph * dy
    x1, y1 = gx - gw * 0.5 + 0.5, gy - gh * 0.5 + 0.5
    x2, y2 = gx + gw * 0.5 - 0.5, gy + gh * 0.5 - 0.5
    if max_shape is not None:
        x1 = x1.clamp(min=0, max=max_shape[1] - 1)
        y1 = y1.clamp(min=0, max=max_shape[0] - 1)
        x2 = x2.clamp(min=0, max=max_shape[1] - 1)
        y2 = y2.clamp(min=0, max=max_shape[0] - 1)
    return torch.stack([x1, y1, x2, y2], dim=-1).view_as(deltas)
