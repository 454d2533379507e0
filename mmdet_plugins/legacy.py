"""mmdet 1.0rc1 inference conventions for the converted published snapshots (configs/deeplesion/official).

Thin registrations over :mod:`alignshift.boxes` and :mod:`alignshift.data.published`:

- ``V1AnchorGenerator``: anchors centred on the cell corner (the published anchor head's
  ``ctr=(0, 0)``), ``(size - 1) / 2`` half-extents, rounded.
- ``V1DeltaXYWHBBoxCoder``: mmdet 1.x's decoder, with the +-0.5 on the final corners and the
  clip to ``W - 1`` / ``H - 1`` that mmdet 3's ``LegacyDeltaXYWHBBoxCoder`` leaves out (its
  ``encode`` is mmdet 3's legacy one, which already matches mmdet 1.x).
- ``V1SingleRoIExtractor``: mmdet 1.x's RoIAlign pooled ``[x1, x2 + 1]``; mmcv's
  ``RoIAlign(aligned=False)`` pools ``[x1, x2]``, so the far corners get the missing pixel here.
  mmcv also widens RoIs narrower than one feature cell to one cell where mmdet 1.x did not (boxes
  under 3 px at stride 4); that is the one known difference left.
- ``LoadDeepLesionSlicesV1``: the published slice sampling (:mod:`alignshift.data.published`).
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor
from mmdet.models.task_modules.coders import LegacyDeltaXYWHBBoxCoder
from mmdet.models.task_modules.prior_generators import AnchorGenerator
from mmdet.registry import MODELS, TASK_UTILS, TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes, get_box_tensor
from torch import Tensor

from alignshift.boxes import v1_base_anchors, v1_delta2bbox
from alignshift.data.published import PUBLISHED_VARIANTS, load_published_multislice

from .transforms import LoadDeepLesionSlices

__all__ = ["LoadDeepLesionSlicesV1", "V1AnchorGenerator", "V1DeltaXYWHBBoxCoder", "V1SingleRoIExtractor"]


@TASK_UTILS.register_module()
class V1AnchorGenerator(AnchorGenerator):
    """mmdet 1.0rc1's anchors as the published RPN made them (:func:`alignshift.boxes.v1_base_anchors`).

    Args:
        strides, ratios, scales, base_sizes, scale_major: as mmdet's ``AnchorGenerator``.
        center: the anchors' centre within a cell, in pixels; (0, 0) as published.
    """

    def __init__(self, strides: Sequence[int], ratios: Sequence[float], scales: Sequence[float],
                 base_sizes: Sequence[int], scale_major: bool = True,
                 center: Tuple[float, float] = (0.0, 0.0)) -> None:
        self.v1_center = (float(center[0]), float(center[1]))  # read by the base class's __init__
        super().__init__(strides=strides, ratios=ratios, scales=scales, base_sizes=base_sizes,
                         scale_major=scale_major)

    def gen_single_level_base_anchors(self, base_size, scales: Tensor, ratios: Tensor,
                                      center: Optional[Tuple[float, float]] = None) -> Tensor:
        return v1_base_anchors(float(base_size), scales.tolist(), ratios.tolist(), self.v1_center,
                               self.scale_major)


@TASK_UTILS.register_module()
class V1DeltaXYWHBBoxCoder(LegacyDeltaXYWHBBoxCoder):
    """mmdet 1.0rc1's ``delta2bbox`` for decoding; mmdet 3's legacy ``encode``.

    decode: bboxes (N, 4), pred_bboxes (N, 4k) -> (N, 4k).
    """

    def decode(self, bboxes, pred_bboxes: Tensor, max_shape: Optional[Sequence[int]] = None,
               wh_ratio_clip: float = 16 / 1000):
        bboxes = get_box_tensor(bboxes)
        if pred_bboxes.dim() != 2 or bboxes.dim() != 2 or pred_bboxes.size(0) != bboxes.size(0):
            raise ValueError(f"expected bboxes (N, 4) and pred_bboxes (N, 4k), got {tuple(bboxes.shape)} "
                             f"and {tuple(pred_bboxes.shape)}")
        out = v1_delta2bbox(bboxes, pred_bboxes, self.means, self.stds, max_shape, wh_ratio_clip)
        return HorizontalBoxes(out) if self.use_box_type else out


@MODELS.register_module()
class V1SingleRoIExtractor(SingleRoIExtractor):
    """``SingleRoIExtractor`` that pools ``[x1, x2 + 1] x [y1, y2 + 1]`` as mmdet 1.x's RoIAlign did.

    Use with ``roi_layer=dict(type='RoIAlign', aligned=False, ...)`` and one feature level.
    """

    def forward(self, feats, rois: Tensor, roi_scale_factor: Optional[float] = None) -> Tensor:
        if len(feats) != 1:
            raise ValueError(f"V1SingleRoIExtractor expects one feature level, got {len(feats)}")
        rois = rois.clone()
        rois[:, 3:5] += 1  # rois: (N, 5) = (batch index, x1, y1, x2, y2)
        return super().forward(feats, rois, roi_scale_factor)


@TRANSFORMS.register_module()
class LoadDeepLesionSlicesV1(LoadDeepLesionSlices):
    """``LoadDeepLesionSlices`` with the published slice sampling of ``variant``.

    Args:
        variant: 'alignshift', 'tsm' or '2.5d' (see :mod:`alignshift.data.published`).
        num_slices, norm_interval, window: as ``LoadDeepLesionSlices`` (``interpolate`` is the
            variant's).
    """

    def __init__(self, variant: str = "alignshift", num_slices: Optional[int] = None,
                 norm_interval: Optional[float] = None, window: Optional[Sequence[float]] = None) -> None:
        if variant not in PUBLISHED_VARIANTS:
            raise ValueError(f"variant must be one of {PUBLISHED_VARIANTS}, got {variant!r}")
        super().__init__(num_slices=num_slices, norm_interval=norm_interval, window=window)
        self.variant = variant

    def _load_hu(self, results: dict, image_dir: str, file_name: str):
        return load_published_multislice(image_dir, file_name, float(results["thickness"]),
                                         int(self._opt(results, "num_slices", 7)),
                                         float(self._opt(results, "norm_interval", 2.0)), self.variant)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(variant={self.variant!r}, {self.overrides})"
