"""mmdet backbones: thin adapters over :mod:`alignshift.models`."""

from __future__ import annotations

from typing import Dict, Optional, Tuple

from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor

from alignshift.models import DenseNetBackbone3D, DenseNetBackbone25D


class _PretrainedMixin:
    """Load ImageNet weights in ``init_weights`` (train time), not at construction (test time)."""

    pretrained: Optional[str]
    net: object

    def init_weights(self) -> None:
        super().init_weights()
        if self.pretrained:
            self.net.load_pretrained(self.pretrained)


@MODELS.register_module()
class DenseNet3DBackbone(_PretrainedMixin, BaseModule):
    """Truncated DenseNet-121 in 3D (``conv``: 'plain', 'tsm', 'alignshift' or 'a3d').

    forward: x (B, D, H, W) with the slices as channels, thickness (B,) mm ->
    ((B, 512, H/4, W/4),).
    """

    def __init__(self, conv: str = "alignshift", num_slices: int = 7, out_channels: int = 512,
                 pretrained: Optional[str] = None, memory_efficient: bool = False,
                 conv_cfg: Optional[Dict] = None, shift_transitions: bool = False,
                 first_conv_init: str = "mean", neck_init: str = "default", init_cfg=None) -> None:
        super().__init__(init_cfg)
        self.pretrained = pretrained
        self.net = DenseNetBackbone3D(conv, num_slices, out_channels, None, memory_efficient,
                                      conv_cfg, shift_transitions, first_conv_init, neck_init)

    def forward(self, x: Tensor, thickness: Optional[Tensor] = None) -> Tuple[Tensor]:
        return (self.net(x, thickness),)


@MODELS.register_module()
class DenseNet25DBackbone(_PretrainedMixin, BaseModule):
    """2.5D baseline: the slices are the input channels of a 2D truncated DenseNet-121.

    forward: x (B, D, H, W), thickness ignored -> ((B, 512, H/4, W/4),).
    """

    def __init__(self, num_slices: int = 3, out_channels: int = 512,
                 pretrained: Optional[str] = None, memory_efficient: bool = False,
                 first_conv_init: str = "mean", neck_init: str = "default", init_cfg=None) -> None:
        super().__init__(init_cfg)
        self.pretrained = pretrained
        self.net = DenseNetBackbone25D(num_slices, out_channels, None, memory_efficient,
                                       first_conv_init, neck_init)

    def forward(self, x: Tensor, thickness: Optional[Tensor] = None) -> Tuple[Tensor]:
        return (self.net(x, thickness),)
