"""mmdet 1.0rc1 (published AlignShift / TSM / 2.5D Mask R-CNN) state dicts -> this project's detector.

Pure torch: the key layout of both sides is written down here, nothing is imported from mmdet.

Source (published, mmdet 1.0rc1 Mask R-CNN)          Target (``ThicknessAwareFasterRCNN``)
-------------------------------------------------   -------------------------------------------------
``backbone.{conv0,norm0,denseblock*,transition*}``  ``backbone.net.body[.model].features.<same>``
``backbone.reductionz{i}.reduction_z_conv.weight``  ``backbone.net.reductions.{i-1}.weight`` (+ zero
                                                     ``bias``: the published reductions have none)
``backbone.lateral{2,3,4}.*``                       ``backbone.net.top_down.laterals.{0,1,2}.*``
``rpn_head.rpn_{conv,cls,reg}.*``                   unchanged (sigmoid RPN: channel order is the same)
``bbox_head.shared_fcs.{0,1}.*``                    ``roi_head.bbox_head.shared_fcs.{0,1}.*``
``bbox_head.fc_cls.*`` (2, ...) background first     background moved last (mmdet 3 order)
``bbox_head.fc_reg.*`` (8, ...) per class            lesion rows 4-7 only (class-specific, 1 class)
``mask_head.*``                                      dropped: box predictions do not use it
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor

__all__ = ["CheckpointLayoutError", "ConversionReport", "V1_HEAD_SHAPES", "convert_v1_checkpoint",
           "convert_v1_state_dict", "detect_v1_variant", "published_backbone_shapes",
           "v1_state_dict_layout"]

V1_HEAD_SHAPES: Dict[str, Tuple[int, ...]] = {
    "rpn_head.rpn_conv.weight": (512, 512, 3, 3), "rpn_head.rpn_conv.bias": (512,),
    "rpn_head.rpn_cls.weight": (18, 512, 1, 1), "rpn_head.rpn_cls.bias": (18,),
    "rpn_head.rpn_reg.weight": (72, 512, 1, 1), "rpn_head.rpn_reg.bias": (72,),
    "bbox_head.shared_fcs.0.weight": (2048, 25088), "bbox_head.shared_fcs.0.bias": (2048,),
    "bbox_head.shared_fcs.1.weight": (2048, 2048), "bbox_head.shared_fcs.1.bias": (2048,),
    "bbox_head.fc_cls.weight": (2, 2048), "bbox_head.fc_cls.bias": (2,),
    "bbox_head.fc_reg.weight": (8, 2048), "bbox_head.fc_reg.bias": (8,),
}
"""Head parameters of a published checkpoint (mask head aside): 18 = 6 scales x 3 ratios."""

_BACKBONE_3D = ("alignshift", "tsm")
_KNOWN_CONVS = (*_BACKBONE_3D, "2.5d")


class CheckpointLayoutError(ValueError):
    """The checkpoint is not a published AlignShift / TSM / 2.5D snapshot of the expected kind."""


@dataclass
class ConversionReport:
    """What the conversion did to every source key (each one is in exactly one list)."""

    variant: str
    num_slices: int
    renamed: List[Tuple[str, str]] = field(default_factory=list)
    changed: List[Tuple[str, str, str]] = field(default_factory=list)  # (source, target, how)
    added: List[Tuple[str, str]] = field(default_factory=list)  # (target, why)
    dropped: List[Tuple[str, str]] = field(default_factory=list)  # (source, why)
    other_top_level: List[str] = field(default_factory=list)

    def lines(self) -> List[str]:
        """A human summary: every key not simply renamed is named."""
        out = [f"published {self.variant} {self.num_slices}-slice snapshot: "
               f"{len(self.renamed)} tensors renamed, {len(self.changed)} rearranged, "
               f"{len(self.added)} added, {len(self.dropped)} dropped"]
        out += [f"  rearranged {s} -> {t}: {how}" for s, t, how in self.changed]
        out += [f"  added {t}: {why}" for t, why in self.added]
        mask = [s for s, why in self.dropped if s.startswith("mask_head.")]
        if mask:
            out.append(f"  dropped the mask head ({len(mask)} tensors: {', '.join(mask)}): it does not "
                       "change box predictions at test time (mmdet 1.x runs it after the boxes are final)")
        out += [f"  dropped {s}: {why}" for s, why in self.dropped if not s.startswith("mask_head.")]
        if self.other_top_level:
            out.append(f"  not carried over from the checkpoint file: {', '.join(self.other_top_level)}")
        return out


@lru_cache(maxsize=1)
def _fixture() -> Dict[str, Dict[str, List[int]]]:
    text = resources.files(__package__).joinpath("official_alignshift_backbone_keys.json").read_text()
    return json.loads(text)


def published_backbone_shapes(num_slices: int, variant: str = "alignshift") -> Dict[str, Tuple[int, ...]]:
    """The published backbone's tensors (``backbone.``-prefixed name -> shape).

    AlignShift and TSM share the layout of ``official_alignshift_backbone_keys.json`` (read from
    the published ``DenseNetCustomTrunc3dAlign`` with random weights; the TSM backbone builds the
    same modules with TSM convs). The 2.5D backbone is the 2D DenseNet with ``num_slices`` input
    channels and no depth reductions.
    """
    key = f"backbone_{num_slices}slice"
    fixture = _fixture()
    if variant in _BACKBONE_3D:
        if key not in fixture:
            raise KeyError(f"no published {variant} backbone with {num_slices} slices; known: "
                           f"{', '.join(fixture)}")
        return {k: tuple(v) for k, v in fixture[key].items()}
    if variant == "2.5d":
        out = {}
        for k, v in fixture["backbone_3slice"].items():
            if ".reductionz" in k:
                continue
            out[k] = (64, num_slices, 7, 7) if k == "backbone.conv0.weight" else tuple(v)
        return out
    raise KeyError(f"unknown variant {variant!r}; expected one of {', '.join(_KNOWN_CONVS)}")


def v1_state_dict_layout(num_slices: int, variant: str = "alignshift") -> Dict[str, Tuple[int, ...]]:
    """Every tensor (but the mask head's) of a published checkpoint's ``state_dict``."""
    return {**published_backbone_shapes(num_slices, variant), **V1_HEAD_SHAPES}


def detect_v1_variant(state_dict: Mapping[str, Tensor], meta: Optional[Mapping[str, Any]] = None
                      ) -> Tuple[Optional[str], Optional[int]]:
    """Guess ``(variant, num_slices)`` of a published checkpoint; None where it cannot be told.

    The slice count comes from the depth reductions (3D) or the first conv (2.5D). AlignShift and
    TSM weights look alike; the config text mmdet 1.x keeps in ``meta['config']`` tells them apart.
    """
    red = state_dict.get("backbone.reductionz1.reduction_z_conv.weight")
    conv0 = state_dict.get("backbone.conv0.weight")
    if red is not None and red.dim() == 5:
        slices: Optional[int] = int(red.shape[2])
        variant: Optional[str] = None
        text = str((meta or {}).get("config", ""))
        if "DenseNetCustomTrunc3dAlign" in text:
            variant = "alignshift"
        elif "DenseNetCustomTrunc3dTSM" in text:
            variant = "tsm"
        return variant, slices
    if conv0 is not None and conv0.dim() == 4 and conv0.shape[1] > 1:
        return "2.5d", int(conv0.shape[1])
    return None, None


def _describe(keys: Sequence[str], shapes: Mapping[str, Any], limit: int = 5) -> str:
    shown = [f"{k} {tuple(shapes[k])}" for k in list(keys)[:limit]]
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(shown) + more


def check_v1_layout(state_dict: Mapping[str, Tensor], num_slices: int, variant: str) -> None:
    """Raise :class:`CheckpointLayoutError` naming the first unexpected / missing keys and shapes."""
    expected = v1_state_dict_layout(num_slices, variant)
    got = {k: tuple(v.shape) for k, v in state_dict.items() if not k.startswith("mask_head.")}
    unexpected = [k for k in got if k not in expected]
    missing = [k for k in expected if k not in got]
    wrong = [k for k in expected if k in got and got[k] != expected[k]]
    problems = []
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected: {_describe(unexpected, got)}")
    if missing:
        problems.append(f"{len(missing)} missing: {_describe(missing, expected)}")
    if wrong:
        problems.append("wrong shapes: " + ", ".join(
            f"{k} {got[k]} (expected {expected[k]})" for k in wrong[:5]))
    if problems:
        raise CheckpointLayoutError(
            f"not a published {variant} {num_slices}-slice mmdet 1.0rc1 checkpoint: "
            + "; ".join(problems))


_LATERAL = {"lateral2": 0, "lateral3": 1, "lateral4": 2}


def _target_key(src: str, variant: str) -> str:
    body = "backbone.net.body.model.features." if variant in _BACKBONE_3D else "backbone.net.body.features."
    name = src[len("backbone."):]
    m = re.match(r"^reductionz(\d)\.reduction_z_conv\.weight$", name)
    if m:
        return f"backbone.net.reductions.{int(m.group(1)) - 1}.weight"
    m = re.match(r"^(lateral\d)\.(weight|bias)$", name)
    if m:
        return f"backbone.net.top_down.laterals.{_LATERAL[m.group(1)]}.{m.group(2)}"
    return body + name


def convert_v1_state_dict(state_dict: Mapping[str, Tensor], variant: Optional[str] = None,
                          num_slices: Optional[int] = None, meta: Optional[Mapping[str, Any]] = None
                          ) -> Tuple[Dict[str, Tensor], ConversionReport]:
    """Convert a published ``state_dict``; every source key ends up renamed, changed or dropped.

    Args:
        state_dict: the ``state_dict`` of a published checkpoint.
        variant: 'alignshift', 'tsm' or '2.5d'; None: read from ``meta`` (error if it cannot be).
        num_slices: None: read from the weights.
        meta: the checkpoint's ``meta`` (its ``config`` text tells AlignShift from TSM).

    Returns:
        The new state dict (for ``ThicknessAwareFasterRCNN`` with ``DenseNet3DBackbone`` or
        ``DenseNet25DBackbone``) and the :class:`ConversionReport`.

    Raises:
        CheckpointLayoutError: keys or shapes are not those of a published snapshot.
    """
    found_variant, found_slices = detect_v1_variant(state_dict, meta)
    if found_slices is None:
        check_v1_layout(state_dict, num_slices or 3, variant or "alignshift")  # names what is off
        raise CheckpointLayoutError("not a published mmdet 1.0rc1 AlignShift/TSM/2.5D checkpoint: "
                                    "no backbone.reductionz1 or multi-channel backbone.conv0")
    if variant is None:
        if found_variant is None:
            raise CheckpointLayoutError(
                "cannot tell AlignShift from TSM weights (the checkpoint's meta has no config text): "
                "name the variant (--variant or --config)")
        variant = found_variant
    if variant not in _KNOWN_CONVS:
        raise CheckpointLayoutError(f"unknown variant {variant!r}; expected one of {', '.join(_KNOWN_CONVS)}")
    if found_variant is not None and variant != found_variant:
        raise CheckpointLayoutError(
            f"the checkpoint's config says {found_variant}, but {variant} was asked for")
    if num_slices is not None and num_slices != found_slices:
        raise CheckpointLayoutError(
            f"the checkpoint has {found_slices} slices, but {num_slices} were asked for")
    num_slices = found_slices
    check_v1_layout(state_dict, num_slices, variant)

    report = ConversionReport(variant, num_slices)
    out: Dict[str, Tensor] = {}
    for src, t in state_dict.items():
        if src.startswith("mask_head."):
            report.dropped.append((src, "mask head"))
        elif src.startswith("backbone."):
            dst = _target_key(src, variant)
            out[dst] = t
            report.renamed.append((src, dst))
        elif src.startswith("rpn_head."):
            out[src] = t  # sigmoid RPN: mmdet 1.x and 3 order anchors and channels alike
            report.renamed.append((src, src))
        elif src.startswith("bbox_head.fc_cls."):
            dst = "roi_head." + src
            out[dst] = torch.cat([t[1:], t[:1]], 0)  # (bg, lesion) -> (lesion, bg)
            report.changed.append((src, dst, "background row moved last"))
        elif src.startswith("bbox_head.fc_reg."):
            dst = "roi_head." + src
            out[dst] = t[4:8].clone()
            report.changed.append((src, dst, "lesion rows 4-7 kept, background rows 0-3 dropped"))
        else:  # shared_fcs (check_v1_layout admits nothing else)
            dst = "roi_head." + src
            out[dst] = t
            report.renamed.append((src, dst))
    if variant in _BACKBONE_3D:
        for i in range(3):
            w = out[f"backbone.net.reductions.{i}.weight"]
            out[f"backbone.net.reductions.{i}.bias"] = w.new_zeros(w.shape[0])
            report.added.append((f"backbone.net.reductions.{i}.bias",
                                 "zeros: the published depth reductions have no bias"))
    return out, report


def convert_v1_checkpoint(checkpoint: Mapping[str, Any], variant: Optional[str] = None,
                          num_slices: Optional[int] = None) -> Tuple[Dict[str, Any], ConversionReport]:
    """Convert a loaded published checkpoint (``{'meta', 'state_dict', 'optimizer'}``).

    Returns ``{'state_dict': ..., 'meta': {'source': <the published meta>, 'converted_from':
    'mmdet 1.0rc1', 'variant': ..., 'num_slices': ...}}`` and the report. The optimizer state
    and any other top-level entry are not carried over (listed in the report).
    """
    if not isinstance(checkpoint, Mapping):
        raise CheckpointLayoutError(f"expected a checkpoint dict, got {type(checkpoint).__name__}")
    if "state_dict" in checkpoint:
        sd, meta = checkpoint["state_dict"], checkpoint.get("meta") or {}
        others = [k for k in checkpoint if k not in ("state_dict", "meta")]
    else:  # a bare state dict
        sd, meta, others = checkpoint, {}, []
    if not isinstance(sd, Mapping) or not all(isinstance(v, Tensor) for v in sd.values()):
        raise CheckpointLayoutError("the checkpoint's state_dict is not a mapping of names to tensors")
    new_sd, report = convert_v1_state_dict(sd, variant, num_slices, meta)
    report.other_top_level = others
    out_meta = dict(source=dict(meta), converted_from="mmdet 1.0rc1", variant=report.variant,
                    num_slices=report.num_slices)
    return {"state_dict": new_sd, "meta": out_meta}, report
