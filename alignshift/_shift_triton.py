"""Triton kernels for the depth shift and its adjoint on CUDA tensors.

The torch-op version in :mod:`alignshift.ops` launches about 6 small kernels for the shift and
``2 * D`` for its in-place adjoint; on a GPU each launch costs more than the arithmetic. Here each
is one launch. A program owns one ``(b, c)`` depth column of ``BLOCK`` pixels and walks its ``D``
slices, so the adjoint can update in place without any other program touching its data.

With ``s = +1`` (first fold), ``-1`` (second fold) or ``0`` (the rest), the shift is::

    out[d] = own(d) * x[d] + (1 - a) * [0 <= d + s < D] * x[d + s]
    own(d) = a + (1 - a) * [replicate and not 0 <= d + s < D]

and its adjoint is the same with the neighbour read at ``d - s`` (``own`` unchanged).

Import only where Triton is installed; :mod:`alignshift.ops` falls back to torch ops otherwise.
The kernels also run under ``TRITON_INTERPRET=1`` on CPU tensors, which is how CI tests them.
"""

from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl
from torch import Tensor

__all__ = ["shift_forward", "adjoint_inplace"]

_BLOCK = 512


@triton.jit
def _shift_kernel(src, dst, alpha, C, D, HW, fold,
                  REPLICATE: tl.constexpr, ADJOINT: tl.constexpr, FOLDS_ONLY: tl.constexpr,
                  HAS_ALPHA: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    if FOLDS_ONLY:  # the grid covers the 2 * fold shifted channels of each sample
        b = pid // (2 * fold)
        c = pid % (2 * fold)
    else:
        b = pid // C
        c = pid % C
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < HW
    base = (b.to(tl.int64) * C + c) * D * HW
    if c < 2 * fold:
        s = tl.where(c < fold, 1, -1)
        r = -s if ADJOINT else s  # where the neighbour is read
        if HAS_ALPHA:
            a = tl.load(alpha + b).to(ACC)
        else:  # TSM: a = 0 for every sample, no weights tensor
            a = tl.zeros((), dtype=ACC)
        # walk in the reading direction: in place, a slice is overwritten only after its last read
        start = tl.where(r > 0, 0, D - 1)
        for i in range(0, D):
            d = start + i * r
            v = tl.load(src + base + d * HW + offs, mask=mask, other=0.0).to(ACC)
            edge = (d + s < 0) | (d + s >= D)
            own = tl.where(edge & REPLICATE, 1.0, a)
            n = d + r
            has_n = (n >= 0) & (n < D)
            nb = tl.load(src + base + n * HW + offs, mask=mask & has_n, other=0.0).to(ACC)
            out = own * v + (1.0 - a) * nb
            tl.store(dst + base + d * HW + offs, out.to(dst.dtype.element_ty), mask=mask)
    else:
        for d in range(0, D):
            v = tl.load(src + base + d * HW + offs, mask=mask, other=0.0)
            tl.store(dst + base + d * HW + offs, v, mask=mask)


def _launch(src: Tensor, dst: Tensor, a: Optional[Tensor], fold: int, replicate: bool,
            adjoint: bool, folds_only: bool) -> None:
    # shapes read from .shape only: on a GPU the host time of each launch is the cost that shows
    bsz, c, d, h, w = src.shape
    channels = 2 * fold if folds_only else c
    grid = (bsz * channels, triton.cdiv(h * w, _BLOCK))
    acc = tl.float64 if src.dtype == torch.float64 else tl.float32
    if a is not None and not a.is_contiguous():
        a = a.contiguous()
    _shift_kernel[grid](src, dst, src if a is None else a, c, d, h * w, fold,
                        REPLICATE=replicate, ADJOINT=adjoint, FOLDS_ONLY=folds_only,
                        HAS_ALPHA=a is not None, ACC=acc, BLOCK=_BLOCK)


def shift_forward(x: Tensor, a: Optional[Tensor], fold: int, replicate: bool) -> Tensor:
    """Shifted copy of ``x: (B, C, D, H, W)`` (contiguous); ``a``: ``B`` weights on the own slice
    (any float dtype: read in the accumulation precision), or None for all zero (TSM)."""
    out = torch.empty_like(x)
    _launch(x, out, a, fold, replicate, adjoint=False, folds_only=False)
    return out


def adjoint_inplace(g: Tensor, a: Optional[Tensor], fold: int, replicate: bool) -> Tensor:
    """The shift's adjoint applied to ``g: (B, C, D, H, W)`` (contiguous) in place."""
    if fold > 0:
        _launch(g, g, a, fold, replicate, adjoint=True, folds_only=True)
    return g
