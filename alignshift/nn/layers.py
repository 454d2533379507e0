"""Small helpers that apply 2D operations to every slice of a 3D tensor."""

from __future__ import annotations

from typing import Callable, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["SliceWise", "slicewise", "SliceGroupNorm", "SliceInstanceNorm2d", "SliceLayerNorm",
           "SlicePermute", "FlattenDepth", "DEPTH_REDUCE", "reduce_depth", "depth_flatten", "spatial_reduce",
           "slicewise_permute", "depth_broadcast"]


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


# --- where depth leaves the network -------------------------------------------------------------
# A converted network carries depth on axis 2 of every feature map (B, C, D, H, W). Depth is
# reduced where the 2D network leaves the spatial domain: where it flattens a map into a vector
# or pools it into one (x.mean([2, 3])). Pooling that keeps the map (adaptive pooling to 1x1,
# broadcast back as in squeeze-excitation or DeepLabV3's image pooling) keeps the depth.

DEPTH_REDUCE = ("mean", "max", "key")


def check_depth_reduce(depth_reduce: str) -> str:
    if depth_reduce not in DEPTH_REDUCE:
        raise ValueError(f"depth_reduce must be one of {DEPTH_REDUCE}, got {depth_reduce!r}")
    return depth_reduce


def reduce_depth(x: Tensor, depth_reduce: str = "mean") -> Tensor:
    """Reduce the depth axis: x (B, C, D, ...) -> (B, C, ...).

    ``'mean'`` averages the slices, ``'max'`` takes their maximum, ``'key'`` keeps the middle
    (key) slice ``D // 2``.
    """
    if depth_reduce == "mean":
        return x.mean(2)
    if depth_reduce == "max":
        return x.amax(2)
    if depth_reduce == "key":
        return x[:, :, x.shape[2] // 2]
    raise ValueError(f"depth_reduce must be one of {DEPTH_REDUCE}, got {depth_reduce!r}")


def depth_flatten(x: Tensor, start_dim: int = 1, end_dim: int = -1, depth_reduce: str = "mean") -> Tensor:
    """``torch.flatten`` that reduces depth first when a 5D map is flattened into vectors.

    x: (B, C, D, H, W) with ``start_dim=1, end_dim=-1`` -> (B, C * H * W); any other input or
    range is flattened as ``torch.flatten`` does.
    """
    if x.dim() == 5 and start_dim % 5 == 1 and end_dim % 5 == 4:
        x = reduce_depth(x, depth_reduce)
    return torch.flatten(x, start_dim, end_dim)


def depth_flatten_batch(x: Tensor, batch: object = None, depth_reduce: str = "mean") -> Tensor:
    """``x.view(x.size(0), -1)`` / ``x.reshape(B, -1)`` of a converted network.

    x: (B, C, D, H, W) -> (B, C * H * W) after the depth reduction; other input -> (B, -1).
    """
    if x.dim() == 5:
        x = reduce_depth(x, depth_reduce)
    return x.reshape(x.shape[0], -1)


def _dims_4d_to_5d(dims: Sequence[int]) -> Tuple[int, ...]:
    # (B, C, H, W) axis -> (B, C, D, H, W) axis; negative axes count from the end in both
    return tuple(d if d < 0 else (d if d < 2 else d + 1) for d in dims)


def spatial_reduce(x: Tensor, op: str, dim: Union[int, Sequence[int], None] = None, keepdim: bool = False,
                   depth_reduce: str = "mean", **kwargs) -> Tensor:
    """``x.mean(dim)`` / ``x.amax(dim)`` written for (B, C, H, W), applied to a 5D map.

    The 2D axes move to their 5D places. Pooling over both H and W into a vector (no keepdim)
    reduces the depth too: x (B, C, D, H, W) -> (B, C); with keepdim the map keeps its depth.
    """
    fn = getattr(torch, op)
    if x.dim() != 5 or dim is None:
        return fn(x, dim, keepdim, **kwargs) if dim is not None else fn(x, **kwargs)
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    norm = {d % 4 for d in dims}
    y = fn(x, _dims_4d_to_5d(dims), keepdim, **kwargs)
    if not keepdim and norm == {2, 3}:
        y = reduce_depth(y, depth_reduce)
    return y


def permute_5d(dims: Sequence[int]) -> Tuple[int, ...]:
    """The 5D counterpart of a 4D permutation: depth stays on axis 2, beside the two axes that
    end up last (height and width for a channels-last permute)."""
    m = (0, 1, 3, 4)
    return (m[dims[0] % 4], m[dims[1] % 4], 2, m[dims[2] % 4], m[dims[3] % 4])


def slicewise_permute(x: Tensor, *dims) -> Tensor:
    """``x.permute(dims)`` of a 2D network on every slice: 4D dims on 5D input keep depth on axis 2.

    x (B, C, D, H, W) with ``dims=(0, 2, 3, 1)`` -> (B, H, D, W, C); applying ``(0, 3, 1, 2)`` to
    that gives (B, C, D, H, W) back. Other input is permuted as given.
    """
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    if x.dim() == 5 and len(dims) == 4:
        return x.permute(permute_5d(dims))
    return x.permute(dims)


def depth_broadcast(t: Tensor) -> Tensor:
    """A parameter that broadcasts over a 2D map, (C, H, W) or (B, C, H, W), gets a depth axis:
    (C, 1, H, W) or (B, C, 1, H, W), so it broadcasts over (B, C, D, H, W) alike."""
    return t.unsqueeze(-3) if t.dim() in (3, 4) else t


class FlattenDepth(nn.Flatten):
    """``nn.Flatten`` of a converted network: reduces depth before flattening a 5D map.

    x: (B, C, D, H, W) -> (B, C * H * W) by ``depth_reduce`` over D; other input as ``nn.Flatten``.
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1, depth_reduce: str = "mean") -> None:
        super().__init__(start_dim, end_dim)
        self.depth_reduce = check_depth_reduce(depth_reduce)

    def forward(self, x: Tensor) -> Tensor:
        return depth_flatten(x, self.start_dim, self.end_dim, self.depth_reduce)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", depth_reduce={self.depth_reduce!r}"


class SlicePermute(nn.Module):
    """A 4D permute module (e.g. ConvNeXt's channels-last ``Permute``) on 5D input.

    x (B, C, D, H, W) with ``dims=[0, 2, 3, 1]`` -> (B, H, D, W, C): depth stays on axis 2, next to
    height and width, so channels-last layers (LayerNorm, Linear) run on it unchanged and the
    inverse permute restores (B, C, D, H, W).
    """

    def __init__(self, dims: Sequence[int]) -> None:
        super().__init__()
        self.dims = list(dims)

    def forward(self, x: Tensor) -> Tensor:
        return slicewise_permute(x, self.dims)

    def extra_repr(self) -> str:
        return f"dims={self.dims}"


class SliceLayerNorm(nn.LayerNorm):
    """A LayerNorm whose 2D forward (e.g. torchvision's channels-first ``LayerNorm2d``) runs on
    every slice; same parameters and state_dict as the original.

    x: (B, C, D, H, W) -> (B, C, D, H, W); 4D input behaves as the original.
    """

    def __init__(self, norm: nn.LayerNorm) -> None:
        super().__init__(norm.normalized_shape, norm.eps, norm.elementwise_affine,
                         bias=getattr(norm, "bias", None) is not None)
        # the 2D layer's own forward, called on this module (it reads only LayerNorm attributes)
        self.forward_2d = type(norm).forward
        self.load_state_dict(norm.state_dict())
        if norm.weight is not None:
            self.to(norm.weight.device, norm.weight.dtype)
        self.train(norm.training)

    def forward(self, x: Tensor) -> Tensor:
        return slicewise(lambda v: self.forward_2d(self, v), x)


# What a converted torch.fx graph calls: leaves for tracing (their branches on x.dim() cannot be
# traced), so a converted GraphModule can be pickled (pickling re-traces its code).
FX_LEAF_FUNCTIONS = (*dict.fromkeys(SLICEWISE_FUNCTIONALS.values()), depth_flatten, depth_flatten_batch,
                     spatial_reduce, slicewise_permute, depth_broadcast)
