"""Faster R-CNN that hands each sample's slice thickness to its backbone."""

from __future__ import annotations

from typing import List, NamedTuple, Optional, Tuple

import torch
from mmdet.models.detectors import FasterRCNN
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from torch import Tensor


def heads_need_float32(device_type: str) -> bool:
    """Whether the RPN and RoI heads must leave the current autocast: mmcv's compiled NMS and
    RoIAlign take float32 (and float16 on CUDA), not bfloat16, and on a CPU float32 only. Under
    float16 autocast on CUDA (``tools/train.py --amp``) the heads stay in it, as in mmdet."""
    if not torch.is_autocast_enabled(device_type):
        return False
    return not (device_type == "cuda" and torch.get_autocast_dtype(device_type) == torch.float16)


class _Features(NamedTuple):
    """Features already computed (and cast to float32) for the heads, handed to ``extract_feat``."""

    feats: Tuple[Tensor, ...]


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

    Under an autocast whose dtype mmcv's NMS and RoIAlign cannot take (bfloat16; any autocast on
    a CPU, see :func:`heads_need_float32`) the backbone runs in the autocast dtype and the heads
    in float32, on the backbone's features cast to float32.
    """

    def extract_feat(self, batch_inputs) -> Tuple[Tensor]:
        if isinstance(batch_inputs, _Features):
            return batch_inputs.feats
        if isinstance(batch_inputs, ThicknessInputs):
            x = self.backbone(batch_inputs.images, batch_inputs.thickness)
        else:
            x = self.backbone(batch_inputs)
        return self.neck(x) if self.with_neck else x

    def _with_thickness(self, batch_inputs: Tensor, batch_data_samples) -> ThicknessInputs:
        return ThicknessInputs(batch_inputs, thickness_of(batch_data_samples))

    def _run_heads(self, method, batch_inputs: Tensor, batch_data_samples, *args):
        inputs = self._with_thickness(batch_inputs, batch_data_samples)
        device_type = batch_inputs.device.type
        if not heads_need_float32(device_type):
            return method(inputs, batch_data_samples, *args)
        feats = tuple(f.float() for f in self.extract_feat(inputs))
        with torch.autocast(device_type, enabled=False):
            return method(_Features(feats), batch_data_samples, *args)

    def loss(self, batch_inputs: Tensor, batch_data_samples: List[DetDataSample]) -> dict:
        return self._run_heads(super().loss, batch_inputs, batch_data_samples)

    def predict(self, batch_inputs: Tensor, batch_data_samples: List[DetDataSample],
                rescale: bool = True) -> List[DetDataSample]:
        return self._run_heads(super().predict, batch_inputs, batch_data_samples, rescale)

    def _forward(self, batch_inputs: Tensor, batch_data_samples=None):
        return self._run_heads(super()._forward, batch_inputs, batch_data_samples)
