"""The depth shift and the fused shift + conv as ``torch.library`` custom ops, for ``torch.compile``.

Eager calls go through the autograd Functions in :mod:`alignshift.ops`, which cost the host less
per call. Under ``torch.compile`` the same implementations run as opaque operators with shape-only
fake versions, so TorchDynamo captures a converted network without tracing the shift's slicing
(which broke graphs, and crashed Inductor in the resumed graphs) and CUDA graphs can capture it.

The shift backend (:func:`alignshift.ops.shift_backend`) is passed as an argument, so the forward's
choice reaches the backward as it does in eager mode.
"""

# No ``from __future__ import annotations``: custom_op reads these annotations as types.
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .ops import _kernels_for, _shift_backward, _shift_conv_backward, _shift_conv_forward, _shift_forward

__all__: List[str] = []


@torch.library.custom_op("alignshift::depth_shift", mutates_args=())
def depth_shift(x: Tensor, a: Optional[Tensor], fold: int, replicate: bool, backend: str) -> Tensor:
    """x: (B, C, D, H, W), a: B weights on the own slice or None (all 0) -> the shifted copy."""
    return _shift_forward(x, a, fold, replicate, _kernels_for(x, backend))


@torch.library.custom_op("alignshift::depth_shift_adjoint", mutates_args=())
def depth_shift_adjoint(g: Tensor, a: Optional[Tensor], fold: int, replicate: bool, backend: str) -> Tensor:
    """g: (B, C, D, H, W) -> the shift's adjoint applied to a copy of g."""
    return _shift_backward(g, a, fold, replicate, _kernels_for(g, backend))


@depth_shift.register_fake
@depth_shift_adjoint.register_fake
def _(x: Tensor, a: Optional[Tensor], fold: int, replicate: bool, backend: str) -> Tensor:
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def _setup_shift(ctx, inputs, output) -> None:
    ctx.save_for_backward(inputs[1])
    ctx.conf = inputs[2:]


# The shift is linear, so each op's backward is the other one: double backward works too.
def _shift_grad(ctx, g: Tensor):
    return depth_shift_adjoint(g, ctx.saved_tensors[0], *ctx.conf), None, None, None, None


def _adjoint_grad(ctx, gg: Tensor):
    return depth_shift(gg, ctx.saved_tensors[0], *ctx.conf), None, None, None, None


depth_shift.register_autograd(_shift_grad, setup_context=_setup_shift)
depth_shift_adjoint.register_autograd(_adjoint_grad, setup_context=_setup_shift)


@torch.library.custom_op("alignshift::shift_conv3d", mutates_args=())
def shift_conv3d(x: Tensor, weight: Tensor, bias: Optional[Tensor], a: Optional[Tensor], fold: int,
                 replicate: bool, stride: List[int], padding: List[int], dilation: List[int],
                 groups: int, backend: str) -> Tensor:
    """``conv3d(shift(x), weight, bias, ...)``; saves x, not the shifted copy, for backward.

    Outputs here are contiguous whatever the input's layout, as the fake versions say.
    """
    return _shift_conv_forward(x, weight, bias, a, fold, replicate, stride, padding, dilation,
                               groups, _kernels_for(x, backend)).contiguous()


@shift_conv3d.register_fake
def _(x: Tensor, weight: Tensor, bias: Optional[Tensor], a: Optional[Tensor], fold: int, replicate: bool,
      stride: List[int], padding: List[int], dilation: List[int], groups: int,
      backend: str) -> Tensor:
    s = torch.empty_like(x, memory_format=torch.contiguous_format)  # as the shifted copy is
    return F.conv3d(s, weight, bias, stride, padding, dilation, groups).contiguous()


@torch.library.custom_op("alignshift::shift_conv3d_backward", mutates_args=())
def shift_conv3d_backward(g: Tensor, x: Tensor, weight: Tensor, a: Optional[Tensor], fold: int,
                          replicate: bool, stride: List[int], padding: List[int],
                          dilation: List[int], groups: int, backend: str,
                          need: List[bool]) -> Tuple[Tensor, Tensor, Tensor]:
    """(gx, gw, gb) for ``need = [x, weight, bias]``; an unneeded one is an empty tensor (ops
    cannot return None). ``need[2]`` is False when there is no bias."""
    conf = (fold, replicate, stride, padding, dilation, groups, need[2],
            _kernels_for(x, backend))
    grads = _shift_conv_backward(g, x, weight, a, conf, need)
    return tuple(t.contiguous() if t is not None else g.new_empty(0) for t in grads)


@shift_conv3d_backward.register_fake
def _(g: Tensor, x: Tensor, weight: Tensor, a: Optional[Tensor], fold: int, replicate: bool,
      stride: List[int], padding: List[int], dilation: List[int], groups: int, backend: str,
      need: List[bool]) -> Tuple[Tensor, Tensor, Tensor]:
    shapes = (x.shape, weight.shape, weight.shape[:1])
    return tuple(g.new_empty(shape if n else (0,)) for n, shape in zip(need, shapes))


def _setup_conv(ctx, inputs, output) -> None:
    x, weight, bias, a = inputs[:4]
    ctx.save_for_backward(x, weight, a)
    ctx.conf = inputs[4:10]
    ctx.backend, ctx.has_bias = inputs[10], bias is not None


def _conv_grad(ctx, g: Tensor):
    x, weight, a = ctx.saved_tensors
    need = [ctx.needs_input_grad[0], ctx.needs_input_grad[1],
            ctx.has_bias and ctx.needs_input_grad[2]]
    gx, gw, gb = shift_conv3d_backward(g, x, weight, a, *ctx.conf, ctx.backend, need)
    return ((gx if need[0] else None), (gw if need[1] else None), (gb if need[2] else None),
            None, None, None, None, None, None, None, None)


shift_conv3d.register_autograd(_conv_grad, setup_context=_setup_conv)
