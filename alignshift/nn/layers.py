"""Small helpers that apply 2D operations to every slice of a 3D tensor."""

from __future__ import annotations

from typing import Callable

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["SliceWise", "slicewise", "SliceGroupNorm", "SliceInstanceNorm2d"]


def slicewise(fn: Callable[..., Tensor], x: Tensor, *args, **kwargs) -> Tensor:
    """Apply a 2D op to every slice: x (B, C, D, H, W) -> (B, C', D, H', W').

    4D (and lower) input goes to ``fn`` unchanged, so graphs converted for 3D still run in 2D.
    """
    if x.dim() != 5:
        return fn(x, *args, **kwargs)
    b, c, d, h, w = x.shape
    y = fn(x.transpose(1, 2).reshape(b * d, c, h, w), *args, **kwargs)
    return y.reshape(b, d, *y.shape[1:]).transpose(1, 2)


class SliceWise(nn.Module):
    """Wrap a 2D module (adaptive pool, upsample, ...) to run on every slice of 5D input."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, C, D, H, W) -> (B, C', D, H', W')."""
        return slicewise(self.module, x)


# Named, importable slice-wise versions of 2D functionals, for torch.fx graphs rewritten by the
# converter (fx code generation refers to functions by their qualified name).
def slicewise_adaptive_avg_pool2d(x: Tensor, *args, **kwargs) -> Tensor:
    return slicewise(F.adaptive_avg_pool2d, x, *args, **kwargs)


def slicewise_adaptive_max_pool2d(x: Tensor, *args, **kwargs) -> Tensor:
    return slicewise(F.adaptive_max_pool2d, x, *args, **kwargs)


def slicewise_avg_pool2d(x: Tensor, *args, **kwargs) -> Tensor:
    return slicewise(F.avg_pool2d, x, *args, **kwargs)


def slicewise_max_pool2d(x: Tensor, *args, **kwargs) -> Tensor:
    return slicewise(F.max_pool2d, x, *args, **kwargs)


def slicewise_interpolate(x: Tensor, *args, **kwargs) -> Tensor:
    return slicewise(F.interpolate, x, *args, **kwargs)


SLICEWISE_FUNCTIONALS = {
    F.adaptive_avg_pool2d: slicewise_adaptive_avg_pool2d,
    F.adaptive_max_pool2d: slicewise_adaptive_max_pool2d,
    F.avg_pool2d: slicewise_avg_pool2d,
    F.max_pool2d: slicewise_max_pool2d,
    F.interpolate: slicewise_interpolate,
    F.upsample: slicewise_interpolate,
}


class SliceGroupNorm(nn.GroupNorm):
    """GroupNorm with per-slice (2D) statistics; same parameters and state_dict as GroupNorm.

    x: (B, C, D, H, W) -> (B, C, D, H, W); 4D input behaves as ``nn.GroupNorm``.
    """

    def forward(self, x: Tensor) -> Tensor:
        return slicewise(super().forward, x)


class SliceInstanceNorm2d(nn.InstanceNorm2d):
    """InstanceNorm2d applied to every slice; same parameters and state_dict.

    x: (B, C, D, H, W) -> (B, C, D, H, W).
    """

    def forward(self, x: Tensor) -> Tensor:
        return slicewise(super().forward, x)
