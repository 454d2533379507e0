"""Turn a (pretrained) 2D network into a thickness-aware 3D one in one call.

>>> import torch, torchvision
>>> from alignshift.converter import convert
>>> net = convert(torchvision.models.resnet18(weights=None), conv="alignshift", in_channels=1)
>>> net(torch.randn(2, 1, 7, 224, 224), thickness=torch.tensor([1.25, 5.0])).shape
torch.Size([2, 1000])

Rules (weights, running statistics and hyper-parameters are carried over exactly; state_dict keys
are the 2D model's):

======================================  ==============================================
2D layer                                3D replacement
======================================  ==============================================
Conv2d KxK                              the chosen conv, 1xKxK, 2D-shaped weights
BatchNorm2d                             BatchNorm3d (statistics over B, D, H, W)
SyncBatchNorm                           kept (it accepts 5D input)
GroupNorm / InstanceNorm2d              applied slice by slice (2D statistics per slice)
LayerNorm subclass (LayerNorm2d)        applied slice by slice
MaxPool2d / AvgPool2d KxK               MaxPool3d / AvgPool3d 1xKxK
AdaptiveAvg/MaxPool2d, Upsample         applied slice by slice (depth preserved)
4D Permute (ConvNeXt, channels-last)    5D permute, depth kept on axis 2 beside H and W
Flatten(start_dim=1)                    reduces depth, then flattens (see below)
activations, dropout, Linear,           kept (shape-agnostic)
LayerNorm over the last axis,
StochasticDepth
======================================  ==============================================

Where depth leaves: every feature map keeps its depth, (B, C, D, H, W), until the network leaves
the spatial domain, that is where it makes one vector per image out of a map: ``torch.flatten(x,
1)``, ``nn.Flatten()``, ``x.view(B, -1)``, or global pooling into a vector (``x.mean([2, 3])``).
There depth is reduced by ``depth_reduce``: ``'mean'`` (default), ``'max'``, or ``'key'`` (the
middle slice). A classifier thus returns (B, num_classes) at any D with its Linear layers as they
were; pooling broadcast back onto the map (squeeze-excitation, DeepLabV3's image pooling, LR-ASPP)
keeps its depth, and segmentation networks return per-slice maps (B, K, D, H, W).

When the model is traceable by ``torch.fx``, its ``forward`` is rewritten for 5D maps: 2D
functionals (``F.adaptive_avg_pool2d``, ``F.max_pool2d``, ``F.interpolate``...) run slice by
slice, flattens and global means reduce depth as above, 4D permutes keep depth on axis 2, and a
parameter shaped (C, 1, 1) or (1, C, 1, 1) that arithmetic broadcasts over a map (ConvNeXt's layer
scale) gets a depth axis. Refused with :class:`UnsupportedLayerError`, naming the layer or call:
unknown leaf layers (``keep`` leaves such types untouched), functional ``F.conv2d``, attention over
tokens (``nn.MultiheadAttention``: ViT), functions torch.fx keeps opaque (Swin's window
attention), and reshapes with sizes read at run time (ShuffleNetV2's channel shuffle), whose axes
cannot be told apart. See docs/converter.md.
"""

from __future__ import annotations

import copy
import fnmatch
import operator
import types
import warnings
from typing import Dict, Iterable, Optional, Tuple, Type

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .nn import A3DConv, AlignShiftConv, Conv1xKxK, SliceGroupNorm, SliceInstanceNorm2d, SliceWise, TSMConv
from .nn.layers import (
    FX_LEAF_FUNCTIONS,
    SLICEWISE_FUNCTIONALS,
    FlattenDepth,
    SliceLayerNorm,
    SlicePermute,
    check_depth_reduce,
    depth_broadcast,
    depth_flatten,
    depth_flatten_batch,
    slicewise_permute,
    spatial_reduce,
)
from .ops import SliceThickness, alpha_dtype

__all__ = ["convert", "Converted3D", "UnsupportedLayerError", "CONV_TYPES", "adapt_in_channels",
           "IN_CHANNEL_MODES"]

CONV_TYPES: Dict[str, Type[Conv1xKxK]] = {
    "plain": Conv1xKxK,
    "tsm": TSMConv,
    "alignshift": AlignShiftConv,
    "a3d": A3DConv,
}

_PASSTHROUGH: Tuple[type, ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
    nn.Mish, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.Softplus,
    nn.Identity, nn.Dropout, nn.Linear, nn.SyncBatchNorm,
)
# Dropout2d zeroes whole channels; on 5D input Dropout3d does the same per (B, C).
_SIMPLE_3D = {nn.Dropout2d: nn.Dropout3d}
# layers that mix tokens of an image cut into patches: no per-slice meaning to give them
_TOKEN_LAYERS: Tuple[type, ...] = (nn.MultiheadAttention,)
_UNSUPPORTED_FUNCTIONS = {F.conv2d, F.conv_transpose2d, F.pixel_shuffle, F.pixel_unshuffle,
                          F.upsample_nearest, F.upsample_bilinear}


class UnsupportedLayerError(TypeError):
    """A layer of the 2D model has no 3D counterpart known to the converter."""


IN_CHANNEL_MODES = ("mean", "center")  # how adapt_in_channels maps RGB filters to N inputs


def adapt_in_channels(weight: Tensor, in_channels: int, mode: str = "mean") -> Tensor:
    """Adapt a first-conv weight ``(O, C, K, K)`` to ``in_channels`` inputs.

    ``mode='mean'``: 1 channel takes the mean over the pretrained input channels (for RGB, the mean
    of R, G and B; the response to a grey image then scales by 1/3, which the following norm layer
    absorbs). N channels take the pretrained channels tiled cyclically from the first, each copy
    divided by the number of copies of its source channel, so a grey image repeated over the N
    inputs gives exactly the pretrained response (for N = 3k this is a rescale by 3 / N).

    ``mode='center'`` (the published AlignShift code): the pretrained middle channel (green for
    RGB) goes to the middle input and the others cycle around it, unscaled: 1 channel takes G
    alone, 3 take R G B, 7 take G B R G B R G.
    """
    c = weight.shape[1]
    if mode not in IN_CHANNEL_MODES:
        raise ValueError(f"mode must be 'mean' or 'center', got {mode!r}")
    if mode == "center":
        idx = (torch.arange(in_channels) - in_channels // 2 + c // 2) % c
        return weight[:, idx].clone()
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


def _torchvision_layers() -> Tuple[Tuple[type, ...], Tuple[type, ...]]:
    """torchvision's per-slice layers: (shape-agnostic ones, 4D permutes); empty without torchvision."""
    try:
        from torchvision.ops import Permute, StochasticDepth
    except ImportError:
        return (), ()
    return (StochasticDepth,), (Permute,)


def _layer_3d(m: nn.Module, depth_reduce: str = "mean") -> Optional[nn.Module]:
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
    if type(m) is nn.LayerNorm and len(m.normalized_shape) == 1:
        return m  # over the last axis only: per position, whatever the layout
    if isinstance(m, nn.LayerNorm):  # over several axes, or a 2D subclass (LayerNorm2d)
        return SliceLayerNorm(m)
    if type(m) is nn.Flatten:
        if m.start_dim % 4 != 1 or m.end_dim not in (-1, 3):
            raise UnsupportedLayerError(
                f"nn.Flatten(start_dim={m.start_dim}, end_dim={m.end_dim}) does not flatten a map "
                "into one vector per image; the converter does not know where its depth should go")
        return FlattenDepth(m.start_dim, m.end_dim, depth_reduce)
    if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Upsample)):
        return SliceWise(m)
    if type(m) in _SIMPLE_3D:
        return _SIMPLE_3D[type(m)](m.p, m.inplace)
    shape_agnostic, permutes = _torchvision_layers()
    if isinstance(m, permutes) and len(m.dims) == 4:
        return SlicePermute(m.dims)
    if isinstance(m, _PASSTHROUGH + shape_agnostic):
        return m
    return None


class _Converter:
    def __init__(self, conv_cls, skip_first, in_channels, keep, conv_kwargs, no_shift=(),
                 depth_reduce="mean"):
        self.conv_cls, self.skip_first, self.in_channels = conv_cls, skip_first, in_channels
        self.depth_reduce = depth_reduce
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
        if isinstance(m, _TOKEN_LAYERS):
            raise UnsupportedLayerError(
                f"cannot convert layer '{path}' of type {type(m).__module__}.{type(m).__name__}: it "
                "attends across tokens cut from the image (a vision transformer such as ViT or Swin); "
                "the converter only handles convolutional networks")
        new = _layer_3d(m, self.depth_reduce)
        if new is not None:
            return new
        if len(list(m.children())) > 0:  # a container or block: convert inside it
            return self(m, path)
        raise UnsupportedLayerError(
            f"cannot convert layer '{path}' of type {type(m).__module__}.{type(m).__name__} to 3D; "
            f"pass keep=({type(m).__name__},) to leave it as it is if it is shape-agnostic")


_ARITHMETIC = {operator.add, operator.sub, operator.mul, operator.truediv, operator.iadd, operator.isub,
               operator.imul, operator.itruediv, torch.add, torch.sub, torch.mul, torch.div}
_ARITHMETIC_METHODS = {"add", "sub", "mul", "div", "add_", "sub_", "mul_", "div_"}
_FLATTENS = {torch.flatten}
_RESHAPES = {torch.reshape}
_REDUCTIONS = {torch.mean: "mean", torch.amax: "amax"}
_PERMUTES = {torch.permute}
_TRUSTED_MODULES = ("torch", "_operator", "operator", "builtins", "math", "alignshift")


def _arg(node: torch.fx.Node, i: int, name: str, default):
    if len(node.args) > i:
        return node.args[i]
    return node.kwargs.get(name, default)


def _is_opaque(target) -> bool:
    """A Python function that tracing kept whole (``torch.fx.wrap``): its body is unseen."""
    if not isinstance(target, types.FunctionType):
        return False
    return (target.__module__ or "").split(".")[0] not in _TRUSTED_MODULES


def _is_arithmetic(node: torch.fx.Node) -> bool:
    return (node.op == "call_function" and node.target in _ARITHMETIC
            or node.op == "call_method" and node.target in _ARITHMETIC_METHODS)


def _rewrite_node(node: torch.fx.Node, depth_reduce: str) -> bool:
    """Rewrite one 2D call of a traced graph in place for 5D maps; True when it was rewritten."""
    fn, method = node.op == "call_function", node.op == "call_method"
    target = node.target
    if fn and target in _UNSUPPORTED_FUNCTIONS:
        raise UnsupportedLayerError(
            f"forward calls {target.__name__} directly (node '{node.name}'); the converter "
            "can only convert it when it is an nn.Module")
    if fn and _is_opaque(target):
        raise UnsupportedLayerError(
            f"forward calls {target.__module__}.{target.__name__} (node '{node.name}'), a function "
            "torch.fx keeps opaque, so the converter cannot tell how it treats a map's axes")
    if fn and target in SLICEWISE_FUNCTIONALS:
        node.target = SLICEWISE_FUNCTIONALS[target]
        return True
    if fn and target in _FLATTENS or method and target == "flatten":
        x = node.args[0]
        node.args = (x, _arg(node, 1, "start_dim", 0), _arg(node, 2, "end_dim", -1), depth_reduce)
        node.op, node.target, node.kwargs = "call_function", depth_flatten, {}
        return True
    if fn and target in _RESHAPES or method and target in ("view", "reshape"):
        shape = node.args[1:] if method else (_arg(node, 1, "shape", ()),)
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        if len(shape) == 2 and shape[1] == -1:  # x.view(x.size(0), -1): a map into vectors
            node.op, node.target = "call_function", depth_flatten_batch
            node.args, node.kwargs = (node.args[0], shape[0], depth_reduce), {}
            return True
        if any(isinstance(v, torch.fx.Node) for v in shape):
            raise UnsupportedLayerError(
                f"forward reshapes with sizes read at run time (node '{node.name}': {target}"
                f"({', '.join(map(str, shape))})); written for (B, C, H, W) maps, such a reshape "
                "cannot be told where depth goes")
        return False
    op = _REDUCTIONS.get(target) if fn else (target if method and target in ("mean", "amax") else None)
    if op is not None:
        kwargs = dict(node.kwargs)
        x = node.args[0]
        dim = node.args[1] if len(node.args) > 1 else kwargs.pop("dim", None)
        keepdim = node.args[2] if len(node.args) > 2 else kwargs.pop("keepdim", False)
        node.op, node.target = "call_function", spatial_reduce
        node.args, node.kwargs = (x, op, dim, keepdim, depth_reduce), kwargs
        return True
    if fn and target in _PERMUTES or method and target == "permute":
        dims = node.args[1:] if method else (_arg(node, 1, "dims", ()),)
        node.op, node.target = "call_function", slicewise_permute
        node.args, node.kwargs = (node.args[0], *dims), {}
        return True
    return False


def _rewrite_graph(gm: torch.fx.GraphModule, depth_reduce: str) -> bool:
    """Rewrite the 2D-specific calls of a traced network for 5D maps; True if any was rewritten.

    Flattening or pooling a map into vectors reduces depth (``depth_reduce``); 2D functionals run
    slice by slice; 4D permutes keep depth on axis 2; a parameter or buffer shaped to broadcast
    over a 2D map, (C, H, W) or (B, C, H, W), gets a depth axis where arithmetic uses it.
    """
    changed = False
    for node in list(gm.graph.nodes):
        if node.op == "get_attr":
            value = gm
            for part in node.target.split("."):
                value = getattr(value, part)
            users = [u for u in node.users if _is_arithmetic(u)]
            if isinstance(value, Tensor) and value.dim() in (3, 4) and users:
                with gm.graph.inserting_after(node):
                    bcast = gm.graph.call_function(depth_broadcast, (node,))
                for u in users:
                    u.replace_input_with(node, bcast)
                changed = True
        elif node.op in ("call_function", "call_method"):
            changed |= _rewrite_node(node, depth_reduce)
    if changed:
        gm.graph.lint()
        gm.recompile()
    return changed


class _Tracer(torch.fx.Tracer):
    """Every leaf module stays a call; the converter's own 5D helpers stay calls too (module
    level: a pickled GraphModule is re-traced with this class)."""

    def __init__(self) -> None:
        super().__init__(autowrap_functions=FX_LEAF_FUNCTIONS)

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return len(list(m.children())) == 0 or super().is_leaf_module(m, qualname)


def _trace(model: nn.Module, depth_reduce: str) -> Optional[torch.fx.GraphModule]:
    """``model`` traced by ``torch.fx`` with its 2D calls rewritten; None when untraceable or when
    nothing needed a rewrite (the model then keeps its own class and forward)."""
    try:
        graph = _Tracer().trace(model)
    except Exception as e:  # dynamic control flow: convert modules only
        warnings.warn(f"torch.fx could not trace {type(model).__name__} ({e}); converting its "
                      "modules only: functional 2D calls in its forward are left as they are",
                      stacklevel=3)
        return None
    gm = torch.fx.GraphModule(model, graph, class_name=type(model).__name__ + "3D")
    if not _rewrite_graph(gm, depth_reduce):
        return None
    # GraphModule keeps only what the graph uses, under bare containers: put the model's own
    # blocks back (the generated code reaches them by attribute), so net.model.layer1[0] and the
    # state_dict keys stay those of the 2D model
    for name, child in model.named_children():
        setattr(gm, name, child)
    for name, p in model.named_parameters(recurse=False):
        setattr(gm, name, p)
    for name, b in model.named_buffers(recurse=False):
        gm.register_buffer(name, b, persistent=name not in model._non_persistent_buffers_set)
    return gm


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
        convs = list(self.thickness_convs())
        if thickness is not None:
            # validated, and copied to the device, once per call rather than once per conv
            thickness = SliceThickness.of(thickness, x.shape[0])
            # the shift weights are made here, before any conv runs: a conv then only reads them,
            # also inside a checkpointed block, which torch.compile refuses to let write a cache
            for ref in {m.ref_thickness for m in convs if isinstance(m, AlignShiftConv)
                        and m.enable_shift}:
                thickness.alpha(ref, x.device, alpha_dtype(x.dtype))
        for m in convs:
            m.bind_thickness(thickness)
        return self.model(x)


def convert(model_2d: nn.Module, conv: str = "alignshift", in_channels: Optional[int] = None,
            skip_first: bool = True, keep: Iterable[type] = (), trace: bool = True,
            no_shift: Iterable[str] = (), depth_reduce: str = "mean", **conv_kwargs) -> Converted3D:
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
        depth_reduce: how depth leaves the network where it flattens or globally pools a map
            into one vector per image: ``'mean'`` over the slices, ``'max'``, or ``'key'`` (the
            middle slice ``D // 2``). Maps pooled and broadcast back keep their depth.
        **conv_kwargs: options of the conv class (``n_fold``, ``ref_thickness``,
            ``shift_padding``, ``num_slices`` for A3D).

    Returns:
        :class:`Converted3D` with ``forward(x: (B, C, D, H, W), thickness: (B,) = None)``: a
        classifier gives (B, num_classes), a segmentation network (B, K, D, H, W) maps.

    Raises:
        UnsupportedLayerError: a layer or a call in ``forward`` has no known 3D meaning (the
            message names it).
        ValueError: unknown ``conv`` or ``depth_reduce``, or a ``no_shift`` pattern that
            matches no conv.
    """
    if conv not in CONV_TYPES:
        raise ValueError(f"conv must be one of {sorted(CONV_TYPES)}, got {conv!r}")
    check_depth_reduce(depth_reduce)
    model = copy.deepcopy(model_2d)
    if trace:
        traced = _trace(model, depth_reduce)
        if traced is not None:
            model = traced
    converter = _Converter(CONV_TYPES[conv], skip_first, in_channels, keep, conv_kwargs, no_shift,
                           depth_reduce)
    converter(model)
    unmatched = [pat for pat, n in converter.no_shift.items() if n == 0]
    if unmatched:
        raise ValueError(f"no_shift patterns {unmatched} match no Conv2d of {type(model_2d).__name__}")
    return Converted3D(model)

