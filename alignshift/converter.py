"""Turn a (pretrained) 2D network into a thickness-aware 3D one in one call.

>>> import torchvision
>>> from alignshift.converter import convert
>>> net3d = convert(torchvision.models.resnet18(), conv="alignshift", in_channels=1)
>>> y = net3d(x, thickness)            # x: (B, 1, D, H, W), thickness: (B,) in mm

Rules (weights, running statistics and hyper-parameters are carried over exactly):

======================================  ==============================================
2D layer                                3D replacement
======================================  ==============================================
Conv2d KxK                              the chosen conv, 1xKxK, 2D-shaped weights
BatchNorm2d                             BatchNorm3d (statistics over B, D, H, W)
SyncBatchNorm                           kept (it accepts 5D input)
GroupNorm / InstanceNorm2d              applied slice by slice (2D statistics per slice)
MaxPool2d / AvgPool2d KxK               MaxPool3d / AvgPool3d 1xKxK
AdaptiveAvg/MaxPool2d, Upsample         applied slice by slice (depth preserved)
activations, dropout, Linear, Flatten   kept (shape-agnostic)
======================================  ==============================================

Anything else that is a leaf module raises :class:`UnsupportedLayerError` naming it; pass such
types in ``keep`` to leave them untouched. When the model is traceable by ``torch.fx``, 2D
functional calls in ``forward`` (``F.adaptive_avg_pool2d``, ``F.max_pool2d``, ``F.interpolate``...)
are rewritten to their slice-wise versions too; other functional 2D calls (``F.conv2d``) raise.
"""

from __future__ import annotations

import copy
import fnmatch
import warnings
from typing import Dict, Iterable, Optional, Tuple, Type

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .nn import A3DConv, AlignShiftConv, Conv1xKxK, SliceGroupNorm, SliceInstanceNorm2d, SliceWise, TSMConv
from .nn.layers import SLICEWISE_FUNCTIONALS
from .ops import SliceThickness

__all__ = ["convert", "Converted3D", "UnsupportedLayerError", "CONV_TYPES", "adapt_in_channels"]

CONV_TYPES: Dict[str, Type[Conv1xKxK]] = {
    "plain": Conv1xKxK,
    "tsm": TSMConv,
    "alignshift": AlignShiftConv,
    "a3d": A3DConv,
}

_PASSTHROUGH: Tuple[type, ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
    nn.Mish, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.Softplus,
    nn.Identity, nn.Dropout, nn.Linear, nn.Flatten, nn.SyncBatchNorm,
)
# Dropout2d zeroes whole channels; on 5D input Dropout3d does the same per (B, C).
_SIMPLE_3D = {nn.Dropout2d: nn.Dropout3d}
_UNSUPPORTED_FUNCTIONS = {F.conv2d, F.conv_transpose2d, F.pixel_shuffle, F.pixel_unshuffle,
                          F.upsample_nearest, F.upsample_bilinear}


class UnsupportedLayerError(TypeError):
    """A layer of the 2D model has no 3D counterpart known to the converter."""


def adapt_in_channels(weight: Tensor, in_channels: int) -> Tensor:
    """Adapt a first-conv weight ``(O, C, K, K)`` to ``in_channels`` inputs.

    1 channel: the mean over the pretrained input channels (for RGB, the mean of R, G and B; the
    response to a grey image then scales by 1/3, which the following norm layer absorbs).
    N channels: the pretrained channels tiled cyclically, each copy divided by the number of copies
    of its source channel, so a grey image repeated over the N inputs gives exactly the pretrained
    response (for N = 3k this is a rescale by 3 / N).
    """
    c = weight.shape[1]
    if in_channels == c:
        return weight.clone()
    if in_channels == 1:
        return weight.mean(dim=1, keepdim=True)
    idx = torch.arange(in_channels) % c
    copies = torch.bincount(idx, minlength=c).to(weight.dtype)
    return weight[:, idx] / copies[idx].view(1, -1, 1, 1)


def _conv_from_2d(m: nn.Conv2d, conv_cls: Type[Conv1xKxK], enable_shift: bool,
                  in_channels: Optional[int], conv_kwargs: dict) -> Conv1xKxK:
    cin = m.in_channels if in_channels is None else in_channels
    if in_channels is not None and m.groups != 1:
        raise UnsupportedLayerError("in_channels can only adapt a first conv with groups=1")
    new = conv_cls(cin, m.out_channels, m.kernel_size, stride=m.stride, padding=m.padding,
                   dilation=m.dilation, groups=m.groups, bias=m.bias is not None,
                   padding_mode=m.padding_mode, enable_shift=enable_shift, **conv_kwargs)
    new = new.to(device=m.weight.device, dtype=m.weight.dtype)
    with torch.no_grad():
        weight = m.weight if in_channels is None else adapt_in_channels(m.weight, in_channels)
        new.weight.copy_(weight)
        if m.bias is not None:
            new.bias.copy_(m.bias)
    new.train(m.training)
    return new


def _norm_from_2d(m: nn.Module, cls: type) -> nn.Module:
    new = cls(m.num_features, eps=m.eps, momentum=m.momentum, affine=m.affine,
              track_running_stats=m.track_running_stats)
    state = m.state_dict()
    if state:
        new = new.to(next(iter(state.values())).device)
        new.load_state_dict(state)
    new.train(m.training)
    return new


def _t3(v, fill: int) -> tuple:
    return (fill, *(v if isinstance(v, (tuple, list)) else (v, v)))


def _layer_3d(m: nn.Module) -> Optional[nn.Module]:
    """The 3D twin of a non-conv 2D leaf layer, ``m`` itself when shape-agnostic, else None."""
    if type(m) is nn.BatchNorm2d:
        return _norm_from_2d(m, nn.BatchNorm3d)
    if type(m) is nn.MaxPool2d:
        return nn.MaxPool3d(_t3(m.kernel_size, 1), _t3(m.stride, 1), _t3(m.padding, 0),
                            _t3(m.dilation, 1), m.return_indices, m.ceil_mode)
    if type(m) is nn.AvgPool2d:
        return nn.AvgPool3d(_t3(m.kernel_size, 1), _t3(m.stride, 1), _t3(m.padding, 0),
                            m.ceil_mode, m.count_include_pad, m.divisor_override)
    if type(m) is nn.GroupNorm:
        new = SliceGroupNorm(m.num_groups, m.num_channels, m.eps, m.affine)
        new.load_state_dict(m.state_dict())
        return new.to(m.weight.device) if m.affine else new
    if type(m) is nn.InstanceNorm2d:
        return _norm_from_2d(m, SliceInstanceNorm2d)
    if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Upsample)):
        return SliceWise(m)
    if type(m) in _SIMPLE_3D:
        return _SIMPLE_3D[type(m)](m.p, m.inplace)
    if isinstance(m, _PASSTHROUGH):
        return m
    return None


class _Converter:
    def __init__(self, conv_cls, skip_first, in_channels, keep, conv_kwargs, no_shift=()):
        self.conv_cls, self.skip_first, self.in_channels = conv_cls, skip_first, in_channels
        self.keep, self.conv_kwargs = tuple(keep), conv_kwargs
        self.no_shift = {pat: 0 for pat in no_shift}  # pattern -> convs it matched
        self.seen_conv = False

    def _shifts(self, path: str, first: bool) -> bool:
        hits = [pat for pat in self.no_shift if fnmatch.fnmatchcase(path, pat)]
        for pat in hits:
            self.no_shift[pat] += 1
        return not (hits or (first and self.skip_first))

    def __call__(self, module: nn.Module, prefix: str = "") -> nn.Module:
        for name, child in list(module.named_children()):
            path = f"{prefix}.{name}" if prefix else name
            new = self.convert_one(child, path)
            if new is not child:
                setattr(module, name, new)
        return module

    def convert_one(self, m: nn.Module, path: str) -> nn.Module:
        if self.keep and isinstance(m, self.keep) or isinstance(
                m, (Conv1xKxK, SliceWise, SliceGroupNorm, SliceInstanceNorm2d)):
            return m
        if type(m) is nn.Conv2d:
            first = not self.seen_conv
            self.seen_conv = True
            return _conv_from_2d(m, self.conv_cls, self._shifts(path, first),
                                 self.in_channels if first else None, self.conv_kwargs)
        new = _layer_3d(m)
        if new is not None:
            return new
        if len(list(m.children())) > 0:  # a container or block: convert inside it
            return self(m, path)
        raise UnsupportedLayerError(
            f"cannot convert layer '{path}' of type {type(m).__module__}.{type(m).__name__} to 3D; "
            f"pass keep=({type(m).__name__},) to leave it as it is if it is shape-agnostic")


def _rewrite_functionals(gm: torch.fx.GraphModule) -> None:
    for node in gm.graph.nodes:
        if node.op != "call_function":
            continue
        if node.target in _UNSUPPORTED_FUNCTIONS:
            raise UnsupportedLayerError(
                f"forward calls {node.target.__name__} directly (node '{node.name}'); the converter "
                "can only convert it when it is an nn.Module")
        if node.target in SLICEWISE_FUNCTIONALS:
            node.target = SLICEWISE_FUNCTIONALS[node.target]
    gm.graph.lint()
    gm.recompile()


def _trace(model: nn.Module) -> Optional[torch.fx.GraphModule]:
    class _Tracer(torch.fx.Tracer):
        def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
            return len(list(m.children())) == 0 or super().is_leaf_module(m, qualname)

    try:
        graph = _Tracer().trace(model)
    except Exception as e:  # dynamic control flow: convert modules only
        warnings.warn(f"torch.fx could not trace {type(model).__name__} ({e}); converting its "
                      "modules only: functional 2D calls in its forward are left as they are",
                      stacklevel=3)
        return None
    has_functional = any(n.op == "call_function" and (n.target in SLICEWISE_FUNCTIONALS
                                                      or n.target in _UNSUPPORTED_FUNCTIONS)
                         for n in graph.nodes)
    if not has_functional:
        return None
    return torch.fx.GraphModule(model, graph, class_name=type(model).__name__ + "3D")


class Converted3D(nn.Module):
    """A converted network: ``forward(x, thickness=None)`` with ``x: (B, C, D, H, W)``.

    ``thickness: (B,)`` in mm is handed to this model's own shifting convs for the call (and kept
    until the next call, so gradient checkpointing recomputes with the same values). Two
    converted models never share it.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def thickness_convs(self) -> Iterable[Conv1xKxK]:
        return (m for m in self.model.modules() if isinstance(m, Conv1xKxK))

    def forward(self, x: Tensor, thickness: Optional[Tensor] = None):
        """x: (B, C, D, H, W), thickness: (B,) mm (needed by AlignShift) -> the model's output."""
        if x.dim() != 5:
            raise ValueError(f"expected x of shape (B, C, D, H, W), got {tuple(x.shape)}")
        if thickness is not None:
            # validated, and copied to the device, once per call rather than once per conv
            thickness = SliceThickness.of(thickness, x.shape[0])
        for m in self.thickness_convs():
            m.bind_thickness(thickness)
        return self.model(x)


def convert(model_2d: nn.Module, conv: str = "alignshift", in_channels: Optional[int] = None,
            skip_first: bool = True, keep: Iterable[type] = (), trace: bool = True,
            no_shift: Iterable[str] = (), **conv_kwargs) -> Converted3D:
    """Convert a 2D network to a 3D one with 1xKxK convs of type ``conv``.

    Args:
        model_2d: any 2D network; it is deep-copied, never modified.
        conv: ``'alignshift'``, ``'tsm'``, ``'a3d'`` or ``'plain'``.
        in_channels: adapt the first conv to this many input channels (see
            :func:`adapt_in_channels`); None keeps it.
        skip_first: keep the first conv plain (no depth shift), as published.
        keep: extra leaf-module types to leave untouched (must accept 5D input).
        trace: use ``torch.fx`` to also convert 2D functional calls in ``forward``.
        no_shift: glob patterns on module paths (``fnmatch``, e.g. ``'features.transition*'``);
            matching convs are converted with their depth shift switched off. A pattern that
            matches no conv raises ``ValueError``.
        **conv_kwargs: options of the conv class (``n_fold``, ``ref_thickness``,
            ``shift_padding``, ``num_slices`` for A3D).

    Returns:
        :class:`Converted3D` with ``forward(x: (B, C, D, H, W), thickness: (B,) = None)``.
    """
    if conv not in CONV_TYPES:
        raise ValueError(f"conv must be one of {sorted(CONV_TYPES)}, got {conv!r}")
    model = copy.deepcopy(model_2d)
    if trace:
        traced = _trace(model)
        if traced is not None:
            _rewrite_functionals(traced)
            model = traced
    converter = _Converter(CONV_TYPES[conv], skip_first, in_channels, keep, conv_kwargs, no_shift)
    converter(model)
    unmatched = [pat for pat, n in converter.no_shift.items() if n == 0]
    if unmatched:
        raise ValueError(f"no_shift patterns {unmatched} match no Conv2d of {type(model_2d).__name__}")
    return Converted3D(model)

