"""The truncated DenseNet-121 backbones of the paper: 2.5D and 3D (plain, TSM, AlignShift, A3D).

All variants run dense blocks 1-3 of DenseNet-121 (stride 16 after block 3), reduce each block's
output to the key slice (3D variants: a Conv3d with kernel (D, 1, 1), initialised to pick the
middle slice) and merge them top-down with 1x1 laterals into one map ``(B, 512, H/4, W/4)``.

Parameter names under ``body`` follow torchvision's ``densenet121().features`` so ImageNet
checkpoints load directly (:func:`load_imagenet_weights`).
"""

from __future__ import annotations

import os
import re
import urllib.error
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from torch import Tensor, nn

from ..converter import CONV_TYPES, IN_CHANNEL_MODES, adapt_in_channels, convert
from ..errors import UserError

__all__ = [
    "TruncatedDenseNet2d", "DenseNetBackbone25D", "DenseNetBackbone3D",
    "load_imagenet_weights", "imagenet_weights_file", "DENSENET121_URL",
]

DENSENET121_URL = "https://download.pytorch.org/models/densenet121-a639ec97.pth"
NECK_INITS = ("default", "published")
GROWTH, BN_SIZE, BLOCKS, INIT_FEATURES = 32, 4, (6, 12, 24), 64


class _DenseLayer(nn.Module):
    def __init__(self, in_ch: int, growth: int, bn_size: int, memory_efficient: bool) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_ch)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_ch, bn_size * growth, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False)
        self.memory_efficient = memory_efficient

    def _bottleneck(self, *features: Tensor) -> Tensor:
        return self.conv1(self.relu1(self.norm1(torch.cat(features, 1))))

    def forward(self, features: List[Tensor]) -> Tensor:
        if self.memory_efficient and any(f.requires_grad for f in features):
            # Recomputes the concat + bottleneck in backward: memory grows linearly, not
            # quadratically, with depth. Shifting convs keep their bound thickness for this.
            out = cp.checkpoint(self._bottleneck, *features, use_reentrant=False)
        else:
            out = self._bottleneck(*features)
        return self.conv2(self.relu2(self.norm2(out)))


class _DenseBlock(nn.ModuleDict):
    def __init__(self, n: int, in_ch: int, growth: int, bn_size: int, mem_eff: bool) -> None:
        super().__init__()
        for i in range(n):
            self[f"denselayer{i + 1}"] = _DenseLayer(in_ch + i * growth, growth, bn_size, mem_eff)

    def forward(self, x: Tensor) -> Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class _Transition(nn.Sequential):
    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(OrderedDict(
            norm=nn.BatchNorm2d(in_ch), relu=nn.ReLU(inplace=True),
            conv=nn.Conv2d(in_ch, out_ch, 1, bias=False), pool=nn.AvgPool2d(2, 2)))


class TruncatedDenseNet2d(nn.Module):
    """DenseNet-121 stem and dense blocks 1-3 (2D), returning each block's output.

    forward: x (B, C, H, W) -> [(B, 256, H/4, W/4), (B, 512, H/8, W/8), (B, 1024, H/16, W/16)].
    Converted to 3D, the same code maps (B, C, D, H, W) to the 5D analogues.
    """

    out_channels = (256, 512, 1024)

    def __init__(self, in_channels: int = 3, memory_efficient: bool = False) -> None:
        super().__init__()
        feats = OrderedDict(
            conv0=nn.Conv2d(in_channels, INIT_FEATURES, 7, 2, 3, bias=False),
            norm0=nn.BatchNorm2d(INIT_FEATURES), relu0=nn.ReLU(inplace=True),
            pool0=nn.MaxPool2d(3, 2, 1))
        ch = INIT_FEATURES
        for i, n in enumerate(BLOCKS):
            feats[f"denseblock{i + 1}"] = _DenseBlock(n, ch, GROWTH, BN_SIZE, memory_efficient)
            ch += n * GROWTH
            if i < len(BLOCKS) - 1:
                feats[f"transition{i + 1}"] = _Transition(ch, ch // 2)
                ch //= 2
        self.features = nn.ModuleDict(feats)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> List[Tensor]:
        outs = []
        for name, m in self.features.items():
            x = m(x)
            if name.startswith("denseblock"):
                outs.append(x)
        return outs


def _torchvision_key(k: str) -> str:
    # Old torchvision checkpoints name 'norm.1' what modules now call 'norm1'.
    return re.sub(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean"
                  r"|running_var))$", lambda m: m.group(1) + m.group(2), k)


def imagenet_weights_file(url: str = DENSENET121_URL, model_dir: Optional[str] = None,
                          progress: bool = True) -> str:
    """The local copy of the weights at ``url``: downloaded once into the torch hub cache.

    ``model_dir`` defaults to ``$TORCH_HOME/hub/checkpoints``. Raises
    :class:`alignshift.errors.UserError` (``field="pretrained"``) saying where to put the file by
    hand when the download fails (offline, or behind a proxy).
    """
    model_dir = model_dir or os.path.join(torch.hub.get_dir(), "checkpoints")
    cached = os.path.join(model_dir, os.path.basename(urlparse(url).path))
    if os.path.exists(cached):
        return cached
    try:
        os.makedirs(model_dir, exist_ok=True)
        torch.hub.download_url_to_file(url, cached, progress=progress)
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise UserError(
            f"cannot download the ImageNet DenseNet-121 weights from {url} ({reason}). Offline or "
            f"behind a proxy: fetch that file elsewhere and put it at {cached}, or pass a local copy "
            "as pretrained=/path/to/densenet121-a639ec97.pth (pretrained=None trains from scratch)",
            field="pretrained") from None
    return cached


def load_imagenet_weights(body: nn.Module, checkpoint: str = DENSENET121_URL,
                          model_dir: Optional[str] = None, progress: bool = True,
                          first_conv_init: str = "mean") -> List[str]:
    """Load torchvision's ImageNet DenseNet-121 weights (a path or URL) into ``body``.

    ``body`` is a :class:`TruncatedDenseNet2d` or its 3D conversion (same parameter names).
    URLs go through ``torch.hub`` (cached under ``model_dir``, default ``$TORCH_HOME/hub``).
    Dense block 4, the final norm and the classifier are not used. The first conv is adapted
    (:func:`~alignshift.converter.adapt_in_channels` with ``mode=first_conv_init``: 'mean' or
    'center', the published green-channel choice) when ``body`` has other than 3 inputs.
    Returns the checkpoint keys that were not used.
    """
    if re.match(r"^[a-z]+://", checkpoint):
        checkpoint = imagenet_weights_file(checkpoint, model_dir, progress)
    if not os.path.isfile(checkpoint):
        raise UserError(f"ImageNet weights {checkpoint} do not exist (model.backbone.pretrained); give "
                        f"a local copy of {DENSENET121_URL} or None")
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    own = body.state_dict()
    new, unused = {}, []
    for k, v in state.items():
        key = _torchvision_key(k)
        if key not in own:
            unused.append(k)
            continue
        if key == "features.conv0.weight" and v.shape != own[key].shape:
            v = adapt_in_channels(v, own[key].shape[1], first_conv_init)
        if v.shape != own[key].shape:
            raise ValueError(f"checkpoint {checkpoint}: '{k}' has shape {tuple(v.shape)}, "
                             f"the model expects {tuple(own[key].shape)}")
        new[key] = v
    # A3D's depth mixing has no 2D counterpart and keeps its identity initialisation.
    missing = sorted(k for k in set(own) - set(new) if not k.endswith("depth_mix"))
    if missing:
        raise ValueError(f"checkpoint {checkpoint} lacks {len(missing)} DenseNet-121 entries, "
                         f"e.g. {missing[:3]}")
    body.load_state_dict(new, strict=False)
    return unused


def _check_choice(name: str, value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


class _TopDown(nn.Module):
    """1x1 laterals to ``out_channels`` and a nearest-upsampling top-down sum to the finest map."""

    def __init__(self, in_channels: Sequence[int], out_channels: int = 512) -> None:
        super().__init__()
        self.laterals = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels)

    def published_init(self) -> None:
        """The published laterals' initialisation: Kaiming uniform (a=1), zero bias."""
        for lat in self.laterals:
            nn.init.kaiming_uniform_(lat.weight, a=1)
            nn.init.zeros_(lat.bias)

    def forward(self, feats: Sequence[Tensor]) -> Tensor:
        """feats: finest first, each (B, C_i, H_i, W_i) -> (B, out_channels, H_0, W_0)."""
        out = self.laterals[-1](feats[-1])
        for lat, f in zip(reversed(self.laterals[:-1]), reversed(feats[:-1])):
            out = lat(f) + F.interpolate(out, size=f.shape[-2:], mode="nearest")
        return out


class DenseNetBackbone25D(nn.Module):
    """2.5D baseline: the slices are the input channels of a 2D truncated DenseNet-121.

    forward: x (B, D, H, W), thickness ignored -> (B, 512, H/4, W/4).

    ``first_conv_init`` says how ImageNet's RGB conv0 becomes the ``num_slices``-input one
    (:func:`~alignshift.converter.adapt_in_channels`): 'mean' (tiled, rescaled) or 'center'
    (tiled around green, unscaled, as published). ``neck_init`` 'published' initialises the
    laterals as the published code did (Kaiming uniform, a=1, zero bias); 'default' keeps
    PyTorch's.
    """

    def __init__(self, num_slices: int = 3, out_channels: int = 512,
                 pretrained: Optional[str] = None, memory_efficient: bool = False,
                 first_conv_init: str = "mean", neck_init: str = "default") -> None:
        super().__init__()
        self.num_slices = num_slices
        self.first_conv_init = _check_choice("first_conv_init", first_conv_init, IN_CHANNEL_MODES)
        self.neck_init = _check_choice("neck_init", neck_init, NECK_INITS)
        self.body = TruncatedDenseNet2d(num_slices, memory_efficient)
        self.top_down = _TopDown(TruncatedDenseNet2d.out_channels, out_channels)
        if neck_init == "published":
            self.top_down.published_init()
        if pretrained:
            self.load_pretrained(pretrained)

    def load_pretrained(self, checkpoint: str = DENSENET121_URL) -> List[str]:
        """ImageNet DenseNet-121 weights into the body (first conv tiled over the slices)."""
        return load_imagenet_weights(self.body, checkpoint, first_conv_init=self.first_conv_init)

    def forward(self, x: Tensor, thickness: Optional[Tensor] = None) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.num_slices:
            raise ValueError(f"expected x of shape (B, {self.num_slices}, H, W), got {tuple(x.shape)}")
        return self.top_down(self.body(x))


class DenseNetBackbone3D(nn.Module):
    """Truncated DenseNet-121 run in 3D over ``num_slices`` slices with 1xKxK convs of ``conv``.

    forward: x (B, D, H, W) or (B, 1, D, H, W), thickness (B,) mm -> (B, 512, H/4, W/4), the key
    (middle) slice's features after the depth reductions.

    As in the published TSM/AlignShift/A3D backbones, the stem conv and the two transition convs
    do not mix depth (``shift_transitions=True`` lets the transitions shift too); every conv of
    the dense layers does. ``first_conv_init`` makes ImageNet's RGB conv0 a one-input conv: 'mean'
    of R, G and B, or 'center' (the green filter, as published). ``neck_init`` 'default' starts each
    depth reduction as a copy of the key slice, so the pretrained 2D features reach the heads
    unchanged; 'published' draws the reductions Kaiming-normal (zero bias) and the laterals
    Kaiming-uniform (a=1), as the published code did.
    """

    def __init__(self, conv: str = "alignshift", num_slices: int = 7, out_channels: int = 512,
                 pretrained: Optional[str] = None, memory_efficient: bool = False,
                 conv_cfg: Optional[Dict] = None, shift_transitions: bool = False,
                 first_conv_init: str = "mean", neck_init: str = "default") -> None:
        super().__init__()
        self.first_conv_init = _check_choice("first_conv_init", first_conv_init, IN_CHANNEL_MODES)
        self.neck_init = _check_choice("neck_init", neck_init, NECK_INITS)
        if conv not in CONV_TYPES:
            raise ValueError(f"conv must be one of {sorted(CONV_TYPES)}, got {conv!r}")
        self.conv, self.num_slices = conv, num_slices
        body = TruncatedDenseNet2d(3, memory_efficient)
        kwargs = dict(conv_cfg or {})
        if conv == "a3d":
            kwargs.setdefault("num_slices", num_slices)
        no_shift = () if shift_transitions else ("features.transition*",)
        self.body = convert(body, conv, in_channels=1, trace=False, no_shift=no_shift, **kwargs)
        self.reductions = nn.ModuleList(
            nn.Conv3d(c, c, (num_slices, 1, 1)) for c in TruncatedDenseNet2d.out_channels)
        self.top_down = _TopDown(TruncatedDenseNet2d.out_channels, out_channels)
        if neck_init == "published":
            for red in self.reductions:
                nn.init.kaiming_normal_(red.weight)
                nn.init.zeros_(red.bias)
            self.top_down.published_init()
        else:
            self.reset_reductions()
        if pretrained:
            self.load_pretrained(pretrained)

    def load_pretrained(self, checkpoint: str = DENSENET121_URL) -> List[str]:
        """ImageNet DenseNet-121 weights into the converted body (first conv: ``first_conv_init``)."""
        return load_imagenet_weights(self.body.model, checkpoint, first_conv_init=self.first_conv_init)

    def reset_reductions(self) -> None:
        """Initialise each depth reduction to copy the key slice."""
        key = self.num_slices // 2
        with torch.no_grad():
            for red in self.reductions:
                red.weight.zero_()
                red.bias.zero_()
                idx = torch.arange(red.out_channels)
                red.weight[idx, idx, key] = 1.0

    def forward(self, x: Tensor, thickness: Optional[Tensor] = None) -> Tensor:
        if x.dim() == 4:
            x = x.unsqueeze(1)
        if x.dim() != 5 or x.shape[1:3] != (1, self.num_slices):
            raise ValueError(f"expected x of shape (B, {self.num_slices}, H, W) or "
                             f"(B, 1, {self.num_slices}, H, W), got {tuple(x.shape)}")
        if self.conv == "alignshift" and thickness is None:
            raise ValueError("the AlignShift backbone needs thickness (B,) in mm")
        feats = self.body(x, thickness)
        return self.top_down([red(f).squeeze(2) for red, f in zip(self.reductions, feats)])
