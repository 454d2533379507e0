"""Functional depth-shift operators: AlignShift (thickness-aware) and TSM.

Both act on ``x: (B, C, D, H, W)`` and split the channels in ``n_fold`` groups of
``fold = C // n_fold``. Channels ``[0, fold)`` look one slice forward (``d + 1``), channels
``[fold, 2 * fold)`` one slice backward (``d - 1``), the rest pass through unchanged::

    out[:, c, d] = a * x[:, c, d] + (1 - a) * x[:, c, d + 1]     c in [0, fold)
    out[:, c, d] = a * x[:, c, d] + (1 - a) * x[:, c, d - 1]     c in [fold, 2 * fold)

with ``a = 1 - clamp(ref_thickness / thickness, 0, 1)`` per sample for AlignShift and ``a = 0``
for TSM. The neighbour beyond the volume's edge is zero (``padding='zeros'``) or the edge slice
itself (``padding='replicate'``).

The operators are out-of-place and have a hand-written, exact backward: they never touch their
input, so they are safe after in-place ReLUs and inside residual blocks.

On CUDA tensors the shift and its adjoint run as one Triton kernel each where Triton is installed
(:mod:`alignshift._shift_triton`), otherwise as a few torch ops; :func:`shift_backend` picks one.
Under ``torch.compile`` they are called as the custom ops of :mod:`alignshift._shift_op`.
"""

from __future__ import annotations

import contextlib
import functools
import math
import warnings
from contextvars import ContextVar
from types import ModuleType
from typing import Iterator, Optional, Sequence, Union

import torch
from torch import Tensor

__all__ = ["align_shift", "tsm_shift", "depth_shift", "shift_alpha", "check_thickness",
           "SliceThickness", "shift_conv3d", "shift_backend", "alpha_dtype"]

_PADDINGS = ("zeros", "replicate")
_BACKENDS = ("auto", "torch", "triton")
_TRITON_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_backend: ContextVar[str] = ContextVar("alignshift_shift_backend", default="auto")


def _checked_backend(name: str) -> str:
    if name not in _BACKENDS:
        raise ValueError(f"shift backend must be one of {_BACKENDS}, got {name!r}")
    return name


@contextlib.contextmanager
def shift_backend(name: str) -> Iterator[None]:
    """Run the depth shifts inside the block with one implementation.

    ``'auto'`` (default): Triton for CUDA tensors where Triton is installed, torch ops otherwise.
    ``'torch'``: torch ops everywhere. ``'triton'``: Triton, an error where it cannot run (CPU
    tensors need ``TRITON_INTERPRET=1``). The choice made in forward is kept for backward.
    """
    token = _backend.set(_checked_backend(name))
    try:
        yield
    finally:
        _backend.reset(token)


@functools.cache
def _load_triton() -> Optional[ModuleType]:
    try:
        from . import _shift_triton
    except ImportError:  # Triton is optional
        return None
    return _shift_triton


def _kernels_for(x: Tensor, name: Optional[str] = None) -> Optional[ModuleType]:
    """The Triton kernel module to use for ``x`` (backend ``name``, by default the one chosen
    with :func:`shift_backend`), or None for torch ops."""
    # a name handed to the torch.ops.alignshift ops directly is checked here
    name = _backend.get() if name is None else _checked_backend(name)
    if name == "torch":
        return None
    if name == "auto":
        if not (x.is_cuda and x.dtype in _TRITON_DTYPES):
            return None
        return _load_triton()
    kernels = _load_triton()
    if kernels is None:
        raise RuntimeError("shift_backend('triton') was asked for, but Triton cannot be imported")
    if x.dtype not in _TRITON_DTYPES:
        raise RuntimeError(f"the Triton shift supports {_TRITON_DTYPES}, got {x.dtype}")
    return kernels


def check_thickness(thickness: Union[Tensor, float, list], batch_size: int) -> Tensor:
    """Validate slice thicknesses and return them as a float64 tensor of shape ``(B,)``.

    Accepts ``(B,)`` or ``(B, 1)`` tensors, sequences or a scalar (broadcast to the batch).
    ``inf`` is allowed (no shift); NaN, values <= 0 and a wrong batch size raise ``ValueError``.

    Under ``torch.compile`` the values are checked inside the graph (``torch._assert_async``, a
    ``RuntimeError`` when the compiled code runs) instead of on the host, so that checking them
    does not break the graph; the shape is checked as in eager mode.
    """
    t = torch.as_tensor(thickness, dtype=torch.float64).detach()
    if t.dim() == 0:
        t = t.expand(batch_size)
    elif t.dim() == 2 and t.shape[1] == 1:
        t = t[:, 0]
    if t.dim() != 1 or t.shape[0] != batch_size:
        values = "" if torch.compiler.is_compiling() else f": {t.tolist()}"  # no data read in a graph
        raise ValueError(
            f"thickness must have shape ({batch_size},) or ({batch_size}, 1) to match the batch, "
            f"got shape {tuple(t.shape)}{values}"
        )
    if torch.compiler.is_compiling():
        torch._assert_async((t > 0).all(), "thickness must be > 0 mm (inf means no shift); got a "
                            "value <= 0 or NaN")
        return t
    bad = torch.isnan(t) | (t <= 0)
    if bool(bad.any()):
        raise ValueError(
            f"thickness must be > 0 mm (inf means no shift); offending values at batch positions "
            f"{bad.nonzero().flatten().tolist()}: {t[bad].tolist()}"
        )
    return t


def shift_alpha(thickness: Tensor, ref_thickness: float = 2.0) -> Tensor:
    """``a = 1 - clamp(ref_thickness / thickness, 0, 1)``: the weight kept on the own slice.

    thickness: (B,) in mm. Returns (B,). Thin slices (<= ref) shift fully (a = 0); a 5 mm series
    with ref 2 mm keeps 60 % of its own slice, so every shift spans ``ref_thickness`` mm.
    """
    if not ref_thickness > 0 or math.isinf(ref_thickness):
        raise ValueError(f"ref_thickness must be a finite value > 0 mm, got {ref_thickness}")
    return 1.0 - torch.clamp(ref_thickness / thickness, 0.0, 1.0)


def alpha_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype of the shift weights for features of ``dtype``: float64 for float64, float32
    for every other dtype (under autocast the weights stay float32 while the features are
    bfloat16 or float16)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


class SliceThickness:
    """A batch's validated slice thicknesses, with the shift weights cached per device and dtype.

    Build one per forward and hand it to every shifting conv: the thicknesses are validated, and
    the weights copied to the device, once per (ref_thickness, device, dtype) instead of once per
    conv. On CUDA that matters: a checked or copied value makes the host wait for the GPU.

    thickness: (B,) or (B, 1) in mm (see :func:`check_thickness`).
    """

    def __init__(self, thickness: Union[Tensor, float, list], batch_size: int) -> None:
        self.mm = check_thickness(thickness, batch_size)  # (B,) float64 on the CPU
        self._alpha: dict = {}

    @classmethod
    def of(cls, thickness: Union[SliceThickness, Tensor, float, list],
           batch_size: int) -> SliceThickness:
        """``thickness`` as a SliceThickness for a batch of ``batch_size``: validated once."""
        if not isinstance(thickness, cls):
            return cls(thickness, batch_size)
        if len(thickness) != batch_size:
            raise ValueError(f"{thickness!r} holds {len(thickness)} values for a batch of "
                             f"{batch_size}")
        return thickness

    def __len__(self) -> int:
        return self.mm.shape[0]

    def alpha(self, ref_thickness: float, device: torch.device, dtype: torch.dtype) -> Tensor:
        """(B,) weight on the own slice (see :func:`shift_alpha`), on ``device`` in ``dtype``."""
        key = (ref_thickness, device, dtype)
        if key not in self._alpha:
            a = shift_alpha(self.mm, ref_thickness).to(dtype)
            if torch.device(device).type == "cuda" and not torch.compiler.is_compiling():
                a = a.pin_memory().to(device, non_blocking=True)  # no wait for the GPU
            else:
                a = a.to(device)
            self._alpha[key] = a
        return self._alpha[key]

    def __repr__(self) -> str:
        return f"SliceThickness({self.mm.tolist()})"


def _lerp_weight(a: Optional[Tensor], x: Tensor) -> Union[Tensor, float]:
    """The shift weights as the torch-op shift uses them: (B, 1, 1, 1, 1) in x's dtype (``lerp``
    wants one dtype), or the number 0 for ``a=None`` (TSM: nothing kept, no tensor made)."""
    if a is None:
        return 0.0
    return a.to(x.dtype).view(-1, 1, 1, 1, 1)


def _shift_forward(x: Tensor, a: Optional[Tensor], fold: int, replicate: bool,
                   kernels: Optional[ModuleType] = None) -> Tensor:
    """The shifted copy of ``x: (B, C, D, H, W)``; ``a``: the B weights on the own slice, or None
    for all zero (TSM)."""
    if kernels is not None:
        return kernels.shift_forward(x.contiguous(), a, fold, replicate)
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    out[:, 2 * fold :] = x[:, 2 * fold :]
    if fold == 0:
        return out
    w = _lerp_weight(a, x)
    fwd, bwd = x[:, :fold], x[:, fold : 2 * fold]
    o_fwd, o_bwd = out[:, :fold], out[:, fold : 2 * fold]
    # lerp(start, end, w) = (1 - w) * start + w * end, computed in one pass.
    torch.lerp(fwd[:, :, 1:], fwd[:, :, :-1], w, out=o_fwd[:, :, :-1])
    torch.lerp(bwd[:, :, :-1], bwd[:, :, 1:], w, out=o_bwd[:, :, 1:])
    if replicate:  # the neighbour beyond the edge is the edge slice itself
        o_fwd[:, :, -1] = fwd[:, :, -1]
        o_bwd[:, :, 0] = bwd[:, :, 0]
    else:  # the neighbour beyond the edge is zero
        w0 = w if a is None else w[:, :, 0]
        torch.mul(fwd[:, :, -1], w0, out=o_fwd[:, :, -1])
        torch.mul(bwd[:, :, 0], w0, out=o_bwd[:, :, 0])
    return out


def _shift_backward(g: Tensor, a: Optional[Tensor], fold: int, replicate: bool,
                    kernels: Optional[ModuleType] = None) -> Tensor:
    return _adjoint_inplace(g.clone(memory_format=torch.contiguous_format), a, fold, replicate,
                            kernels)


class _DepthShift(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, a: Optional[Tensor], fold: int, replicate: bool, kernels) -> Tensor:
        ctx.save_for_backward(a)
        ctx.conf = (fold, replicate, kernels)
        return _shift_forward(x, a, fold, replicate, kernels)

    @staticmethod
    def backward(ctx, g: Tensor):
        (a,) = ctx.saved_tensors
        # The shift is linear in x, so its adjoint is again a cheap shift; it is itself
        # differentiable (its backward is the shift), which keeps double backward correct too.
        return _DepthShiftAdjoint.apply(g, a, *ctx.conf), None, None, None, None


class _DepthShiftAdjoint(torch.autograd.Function):
    @staticmethod
    def forward(ctx, g: Tensor, a: Optional[Tensor], fold: int, replicate: bool, kernels) -> Tensor:
        ctx.save_for_backward(a)
        ctx.conf = (fold, replicate, kernels)
        return _shift_backward(g, a, fold, replicate, kernels)

    @staticmethod
    def backward(ctx, gg: Tensor):
        (a,) = ctx.saved_tensors
        return _DepthShift.apply(gg, a, *ctx.conf), None, None, None, None


def _warn_nothing_shifted(channels: int, n_fold: int) -> None:
    # A warning, not an error: a converted network may hold a narrow layer, and stopping its
    # forward pass would cost more than the missing shift. Python shows it once per call site.
    if channels < n_fold and not torch.compiler.is_compiling():
        warnings.warn(f"depth shift of a tensor with {channels} channels and n_fold={n_fold}: "
                      f"fold = {channels} // {n_fold} = 0, so nothing is shifted; use n_fold <= "
                      f"{channels} or more channels", UserWarning, stacklevel=3)


def _shift_weights(alpha: Optional[Tensor], x: Tensor) -> Optional[Tensor]:
    """``alpha`` as the ops take it: (B,) on x's device in :func:`alpha_dtype`; no copy when it
    is so already (a :class:`SliceThickness` caches it so). None stays None (all zero)."""
    if alpha is None:
        return None
    if alpha.numel() != x.shape[0]:
        raise ValueError(f"the shift weights hold {alpha.numel()} values for a batch of "
                         f"{x.shape[0]}: expected shape ({x.shape[0]},)")
    dtype = alpha_dtype(x.dtype)
    if alpha.dim() != 1:
        alpha = alpha.reshape(-1)
    if alpha.dtype != dtype or alpha.device != x.device:
        alpha = alpha.to(device=x.device, dtype=dtype)
    return alpha


def depth_shift(x: Tensor, alpha: Union[Tensor, SliceThickness, None], n_fold: int = 8,
                padding: str = "replicate", ref_thickness: float = 2.0) -> Tensor:
    """The depth shift with given per-sample weights: what :func:`align_shift` and
    :func:`tsm_shift` compute once ``alpha`` is known.

    x: (B, C, D, H, W), alpha: (B,) weight on the own slice, a :class:`SliceThickness` (its
    weights for ``ref_thickness``), or None for all zero (TSM) -> (B, C, D, H, W), a new tensor
    of x's dtype. The weights are applied in float32 (float64 for float64 ``x``) whatever x's
    dtype; the Triton kernels compute in that precision too. With fewer than ``n_fold`` channels
    nothing is shifted, and a ``UserWarning`` says so (once per call site).
    """
    if x.dim() != 5:
        raise ValueError(f"expected x of shape (B, C, D, H, W), got {tuple(x.shape)}")
    if padding not in _PADDINGS:
        raise ValueError(f"padding must be one of {_PADDINGS}, got {padding!r}")
    if n_fold < 2:
        raise ValueError(f"n_fold must be >= 2 (two folds are shifted), got {n_fold}")
    if isinstance(alpha, SliceThickness):
        alpha = SliceThickness.of(alpha, x.shape[0]).alpha(ref_thickness, x.device,
                                                            alpha_dtype(x.dtype))
    _warn_nothing_shifted(x.shape[1], n_fold)
    fold = x.shape[1] // n_fold
    a = _shift_weights(alpha, x)
    if torch.compiler.is_compiling():  # an opaque op to the compiler (see _shift_op)
        return torch.ops.alignshift.depth_shift(x, a, fold, padding == "replicate", _backend.get())
    return _DepthShift.apply(x, a, fold, padding == "replicate", _kernels_for(x))


def align_shift(
    x: Tensor,
    thickness: Union[Tensor, float, SliceThickness],
    ref_thickness: float = 2.0,
    n_fold: int = 8,
    padding: str = "replicate",
) -> Tensor:
    """Thickness-aware depth shift (AlignShift, MICCAI 2020).

    Args:
        x: (B, C, D, H, W) features.
        thickness: (B,) or (B, 1) slice interval in mm per sample (``inf`` means no shift), or a
            :class:`SliceThickness` built once for the batch.
        ref_thickness: the physical distance in mm that every shift spans.
        n_fold: 1 / n_fold of the channels shift forward, 1 / n_fold backward.
        padding: ``'replicate'`` (published setting) or ``'zeros'`` beyond the volume edge.

    Returns:
        (B, C, D, H, W), a new tensor; ``x`` is never modified. With fewer than ``n_fold``
        channels nothing is shifted, and a ``UserWarning`` says so.
    """
    t = SliceThickness.of(thickness, x.shape[0])
    return depth_shift(x, t.alpha(ref_thickness, x.device, alpha_dtype(x.dtype)), n_fold, padding)


def tsm_shift(x: Tensor, n_fold: int = 8, padding: str = "zeros") -> Tensor:
    """Temporal Shift Module applied over depth: whole-slice shift of 2 / n_fold of the channels.

    x: (B, C, D, H, W) -> (B, C, D, H, W), a new tensor; ``x`` is never modified.
    """
    return depth_shift(x, None, n_fold, padding)


def _adjoint_inplace(g: Tensor, a: Optional[Tensor], fold: int, replicate: bool,
                     kernels: Optional[ModuleType] = None) -> Tensor:
    """Apply the shift's adjoint to ``g: (B, C, D, H, W)`` in place; ``a``: B weights or None.

    Only the ``2 * fold`` shifted channels change. Each fold is walked against the direction it
    reads from, so every slice is updated from a neighbour that still holds its incoming value:
    one pass, no copy of the folds (a fresh buffer costs page faults on CPU).
    """
    if kernels is not None and g.is_contiguous():
        return kernels.adjoint_inplace(g, a, fold, replicate)
    depth = g.shape[2]
    if fold == 0:
        return g
    w = _lerp_weight(a, g)
    if replicate:
        w_nb = 1.0 - w  # made once per call, not per fold
    for view, order, step in ((g[:, :fold], range(depth - 1, 0, -1), -1),
                              (g[:, fold:2 * fold], range(depth - 1), 1)):
        # forward fold: out[d] = a x[d] + (1-a) x[d+1], so x[d] gets a g[d] + (1-a) g[d-1];
        # backward fold: the mirror image, walked upwards
        edge = depth - 1 if step < 0 else 0
        for d in order:
            cur, nxt = view[:, :, d:d + 1], view[:, :, d + step:d + step + 1]
            if replicate and d == edge:  # the edge slice also stood in for its missing neighbour
                if a is None:
                    cur.add_(nxt)
                else:
                    cur.addcmul_(nxt, w_nb)
            else:
                torch.lerp(nxt, cur, w, out=cur)
        last = view[:, :, depth - 1 - edge:depth - edge]  # far end: only its own a * g[d]
        if not (replicate and depth == 1):
            last.mul_(w)
    return g


def _shift_conv_backward(g: Tensor, x: Tensor, weight: Tensor, a: Optional[Tensor], conf: tuple,
                         need: Sequence[bool]):
    """Gradients ``(gx, gw, gb)`` of ``conv3d(shift(x), weight, bias)``, None where not needed.

    The shifted input is recomputed for the weight gradient and freed before the input gradient
    is allocated, so the op holds no more memory than the plain convolution.
    """
    fold, replicate, stride, padding, dilation, groups, has_bias, kernels = conf
    need_x, need_w, need_b = need[0], need[1], need[2] and has_bias
    if kernels is None and a is not None and a.dtype != x.dtype:
        a = a.to(x.dtype)  # the torch ops' lerp wants x's dtype: cast once for both uses below
    g = g.contiguous()
    conv_args = (stride, padding, dilation, False, [0, 0, 0], groups)
    bias_sizes = [weight.shape[0]] if has_bias else None
    gw = gb = gx = None
    if need_w or need_b:
        s = _shift_forward(x, a, fold, replicate, kernels)
        _, gw, gb = torch.ops.aten.convolution_backward(
            g, s, weight, bias_sizes, *conv_args, [False, need_w, need_b])
        del s
    if need_x:
        gx, _, _ = torch.ops.aten.convolution_backward(
            g, x, weight, None, *conv_args, [True, False, False])
        gx = _adjoint_inplace(gx, a, fold, replicate, kernels)
    return gx, gw, gb


def _shift_conv_forward(x: Tensor, weight: Tensor, bias: Optional[Tensor], a: Optional[Tensor],
                        fold: int,
                        replicate: bool, stride, padding, dilation, groups: int,
                        kernels: Optional[ModuleType]) -> Tensor:
    s = _shift_forward(x, a, fold, replicate, kernels)
    return torch.nn.functional.conv3d(s, weight, bias, stride, padding, dilation, groups)


class _ShiftConv(torch.autograd.Function):
    """Depth shift followed by a 1xKxK convolution, saving the input instead of the shifted copy
    (see :func:`_shift_conv_backward`)."""

    @staticmethod
    def forward(ctx, x, weight, bias, a, fold, replicate, stride, padding, dilation, groups):
        kernels = _kernels_for(x)
        y = _shift_conv_forward(x, weight, bias, a, fold, replicate, stride, padding, dilation,
                                groups, kernels)
        ctx.save_for_backward(x, weight, a)
        ctx.conf = (fold, replicate, stride, padding, dilation, groups, bias is not None, kernels)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        x, weight, a = ctx.saved_tensors
        gx, gw, gb = _shift_conv_backward(g, x, weight, a, ctx.conf, ctx.needs_input_grad[:3])
        return gx, gw, gb, None, None, None, None, None, None, None


def _autocast_to(t: Optional[Tensor], dtype: torch.dtype) -> Optional[Tensor]:
    # what autocast does to a conv's argument: float32 (and the other low-precision type) is cast,
    # float64 and non-float tensors are left alone; a tensor already in dtype is not copied
    if t is None or t.dtype == dtype or not t.is_floating_point() or t.dtype == torch.float64:
        return t
    return t.to(dtype)


def shift_conv3d(x: Tensor, weight: Tensor, bias: Tensor | None, alpha: Optional[Tensor],
                 n_fold: int, padding_mode: str, stride, padding, dilation, groups: int) -> Tensor:
    """``conv3d(shift(x), weight, ...)`` with the memory of a plain conv (see :class:`_ShiftConv`).

    x: (B, C, D, H, W), weight: (O, C / groups, 1, K, K), alpha: (B,) weight on the own slice, or
    None for all zero (TSM). Under autocast it computes in the autocast dtype, as ``conv3d`` would
    (x, weight and bias are cast as autocast casts a conv's arguments, once each); the shift
    weights stay float32.
    """
    if padding_mode not in _PADDINGS:
        raise ValueError(f"padding must be one of {_PADDINGS}, got {padding_mode!r}")
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type):
        # Cast here, where autograd sees the casts: inside the Function, autocast would cast only
        # the forward's conv, and the backward would meet tensors of two dtypes. The conv inside
        # then finds its arguments in the autocast dtype already and casts nothing.
        dtype = torch.get_autocast_dtype(device_type)
        x, weight, bias = _autocast_to(x, dtype), _autocast_to(weight, dtype), _autocast_to(bias, dtype)
    a = _shift_weights(alpha, x)
    _warn_nothing_shifted(x.shape[1], n_fold)
    fold, replicate = x.shape[1] // n_fold, padding_mode == "replicate"
    if torch.compiler.is_compiling():  # an opaque op to the compiler (see _shift_op)
        return torch.ops.alignshift.shift_conv3d(
            x, weight, bias, a, fold, replicate, list(stride), list(padding), list(dilation),
            groups, _backend.get())
    return _ShiftConv.apply(x, weight, bias, a, fold, replicate, stride, padding, dilation,
                            groups)


from . import _shift_op  # noqa: E402,F401  (registers the torch.ops.alignshift operators)
