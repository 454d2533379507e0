"""The slice preparation a detector config's test dataset and pipeline describe, as a PreprocessConfig.

Reads plain mappings (an mmengine ``Config`` is one), so nothing here imports mmengine:

    pre = preprocess_from_test_pipeline(cfg.test_dataloader.dataset, cfg.model, cfg.filename)

Known test-pipeline transforms: ``LoadDeepLesionSlices`` (this project's sampling),
``LoadDeepLesionSlicesV1`` (the published sampling of ``configs/deeplesion/official``:
``sampler="v1"``, its ``variant`` giving ``interpolate``), a keep-ratio ``Resize``, and
``LoadAnnotations`` / ``PackDetInputs``, which change nothing a detector sees.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Tuple

from ..data.deeplesion import DEFAULT_WINDOW
from ..data.published import PUBLISHED_VARIANTS as _V1_VARIANTS
from ..errors import UserError
from .driver import PreprocessConfig

__all__ = ["KNOWN_TRANSFORMS", "preprocess_from_test_pipeline"]

KNOWN_TRANSFORMS = ("LoadDeepLesionSlices", "LoadDeepLesionSlicesV1", "Resize", "LoadAnnotations",
                    "PackDetInputs")


def _scale(value: Any, where: str) -> Tuple[int, int]:
    if isinstance(value, (int, float)):
        return int(value), int(value)
    try:
        long_side, short_side = value
        return int(long_side), int(short_side)
    except (TypeError, ValueError):
        raise UserError(f"{where}: test pipeline Resize scale {value!r} is not a size or a (w, h) "
                        "pair") from None


def preprocess_from_test_pipeline(dataset: Mapping, model: Optional[Mapping] = None,
                                  where: str = "config") -> PreprocessConfig:
    """The :class:`PreprocessConfig` that prepares a volume's slices as ``dataset`` prepares DeepLesion.

    Args:
        dataset: the test dataset's settings (``num_slices``, ``norm_interval``, ``interpolate``,
            ``window``) with its ``pipeline``; a load transform's own arguments override them.
        model: the model's settings; when its ``backbone`` has ``num_slices``, it must match.
        where: names the config in errors (its file name).

    Raises:
        UserError: a transform that is not reproduced, a resize without keep-ratio, an unknown
            published variant, or a backbone that takes another number of slices; one line naming
            ``where``.
    """
    vals = dict(num_slices=dataset.get("num_slices", 7), norm_interval=dataset.get("norm_interval", 2.0),
                interpolate=dataset.get("interpolate", True), window=dataset.get("window", DEFAULT_WINDOW))
    sampler, scale = "deeplesion", None
    for t in dataset.get("pipeline", None) or []:
        kind = t.get("type")
        if kind in ("LoadDeepLesionSlices", "LoadDeepLesionSlicesV1"):
            keys = ("num_slices", "norm_interval", "window")
            if kind == "LoadDeepLesionSlices":
                keys += ("interpolate",)
            else:
                variant = t.get("variant", "alignshift")
                if variant not in _V1_VARIANTS:
                    raise UserError(f"{where}: LoadDeepLesionSlicesV1 variant {variant!r} is not one of "
                                    f"{', '.join(_V1_VARIANTS)}")
                sampler = "v1"
                # the published loader ignores the dataset's interpolate: its variant decides
                vals["interpolate"] = variant != "alignshift"
            vals.update({k: t[k] for k in keys if t.get(k) is not None})
        elif kind == "Resize":
            if not t.get("keep_ratio", False):
                raise UserError(f"{where}: test pipeline Resize with keep_ratio=False is not reproduced "
                                "for volumes; expected keep_ratio=True")
            scale = _scale(t.get("scale"), where)
        elif kind not in KNOWN_TRANSFORMS:
            raise UserError(f"{where}: test pipeline transform {kind!r} is not reproduced for volumes "
                            f"(known: {', '.join(KNOWN_TRANSFORMS)})")
    backbone = (model or {}).get("backbone", None) or {}
    backbone_slices = backbone.get("num_slices")
    if backbone_slices is not None and int(backbone_slices) != int(vals["num_slices"]):
        raise UserError(f"{where}: the backbone takes {backbone_slices} slices but the test dataset "
                        f"prepares {vals['num_slices']}")
    try:
        return PreprocessConfig(
            num_slices=int(vals["num_slices"]), norm_interval=float(vals["norm_interval"]),
            interpolate=bool(vals["interpolate"]), window=tuple(float(v) for v in vals["window"]),
            img_scale=scale, sampler=sampler)
    except ValueError as err:
        raise UserError(f"{where}: test dataset settings: {err}") from None
