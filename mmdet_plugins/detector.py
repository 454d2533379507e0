"""Faster R-CNN that hands each sample's slice thickness to its backbone."""

from __future__ import annotations

from typing import List, NamedTuple, Optional, Tuple

import torch
from mmdet.models.detectors import FasterRCNN
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from torch import Tensor


class ThicknessInputs(NamedTuple):
    """Images with their slice thickness, as handed from ``loss``/``predict`` to ``extract_feat``."""

    images: Tensor  # (B, D, H, W)
    thickness: Optional[Tensor]  # (B,) mm


def thickness_of(batch_data_samples: Optional[List[DetDataSample]]) -> Optional[Tensor]:
    """The ``thickness`` metainfo of every sample as a (B,) CPU tensor (None without samples).

    It stays on the host: the backbone validates it there and copies the shift weights to the
    device without waiting for the GPU.
    """
    if not batch_data_samples:
        return None
    values = []
    for i, s in enumerate(batch_data_samples):
        if "thickness" not in s.metainfo:
            raise KeyError(f"data sample {i} has no 'thickness' in its metainfo: add 'thickness' "
                           "to PackDetInputs' meta_keys")
        values.append(float(s.metainfo["thickness"]))
    return torch.tensor(values, dtype=torch.float64)


@MODELS.register_module()
class ThicknessAwareFasterRCNN(FasterRCNN):
    """Faster R-CNN whose backbone is called as ``backbone(images, thickness)``.

    mmdet's two-stage detector passes ``batch_inputs`` only to :meth:`extract_feat`; we pass the
    images together with the thickness read from the data samples, so the RPN and RoI heads stay
    mmdet's own.
    """

    def extract_feat(self, batch_inputs) -> Tuple[Tensor]:
        if isinstance(batch_inputs, ThicknessInputs):
            x = self.backbone(batch_inputs.images, batch_inputs.thickness)
        else:
            x = self.backbone(batch_inputs)
        return self.neck(x) if self.with_neck else x

    def _with_thickness(self, batch_inputs: Tensor, batch_data_samples) -> ThicknessInputs:
        return ThicknessInputs(batch_inputs, thickness_of(batch_data_samples))

    def loss(self, batch_inputs: Tensor, batch_data_samples: List[DetDataSample]) -> dict:
        return super().loss(self._with_thickness(batch_inputs, batch_data_samples),
                            batch_data_samples)

    def predict(self, batch_inputs: Tensor, batch_data_samples: List[DetDataSample],
                rescale: bool = True) -> List[DetDataSample]:
        return super().predict(self._with_thickness(batch_inputs, batch_data_samples),
                               batch_data_samples, rescale)

    def _forward(self, batch_inputs: Tensor, batch_data_samples=None):
        return super()._forward(self._with_thickness(batch_inputs, batch_data_samples),
                                batch_data_samples)
