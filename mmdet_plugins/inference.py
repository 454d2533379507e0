"""An mmdet detector as the callable :func:`alignshift.inference.run_detector` expects.

``tools/infer_volume.py`` builds the config's model with :func:`build_detector` and prepares the
scan's slices as :func:`preprocess_from_config` reads the config's test pipeline.
"""

from __future__ import annotations

from typing import List

import numpy as np

from alignshift.data.deeplesion import DEFAULT_WINDOW
from alignshift.errors import UserError
from alignshift.inference import PreprocessConfig

__all__ = ["MMDetDetector", "build_detector", "preprocess_from_config"]

_KNOWN_TRANSFORMS = {"LoadDeepLesionSlices", "Resize", "LoadAnnotations", "PackDetInputs"}


def preprocess_from_config(cfg) -> PreprocessConfig:
    """The slice preparation the config's test dataset and pipeline describe."""
    ds = cfg.test_dataloader.dataset
    vals = dict(num_slices=ds.get("num_slices", 7), norm_interval=ds.get("norm_interval", 2.0),
                interpolate=ds.get("interpolate", True), window=ds.get("window", DEFAULT_WINDOW))
    scale = None
    for t in ds.get("pipeline", []):
        kind = t.get("type")
        if kind == "LoadDeepLesionSlices":
            vals.update({k: t[k] for k in ("num_slices", "norm_interval", "interpolate", "window")
                         if t.get(k) is not None})
        elif kind == "Resize":
            if not t.get("keep_ratio", False):
                raise UserError(f"{cfg.filename}: test pipeline Resize with keep_ratio=False is not "
                                "supported by infer_volume; expected keep_ratio=True")
            s = t.get("scale")
            scale = (int(s), int(s)) if isinstance(s, (int, float)) else (int(s[0]), int(s[1]))
        elif kind not in _KNOWN_TRANSFORMS:
            raise UserError(f"{cfg.filename}: test pipeline transform {kind!r} is not reproduced by "
                            f"infer_volume (it knows {sorted(_KNOWN_TRANSFORMS)})")
    backbone_slices = cfg.model.get("backbone", {}).get("num_slices")
    if backbone_slices is not None and int(backbone_slices) != int(vals["num_slices"]):
        raise UserError(f"{cfg.filename}: the backbone takes {backbone_slices} slices but the test dataset "
                        f"prepares {vals['num_slices']}")
    return PreprocessConfig(num_slices=int(vals["num_slices"]), norm_interval=float(vals["norm_interval"]),
                            interpolate=bool(vals["interpolate"]),
                            window=tuple(float(v) for v in vals["window"]), img_scale=scale)


class MMDetDetector:
    """An mmdet detector as the callable :func:`alignshift.inference.run_detector` expects.

    ``__call__(images: (B, D, H, W) float32 [0, 255], thickness: (B,)) -> B arrays (N, 5)``.
    """

    def __init__(self, model, device: str) -> None:
        self.model, self.device = model, device

    def __call__(self, images: np.ndarray, thickness: np.ndarray) -> List[np.ndarray]:
        import torch
        from mmdet.structures import DetDataSample

        inputs, samples = [], []
        for im, t in zip(images, thickness):
            h, w = im.shape[1:]
            inputs.append(torch.from_numpy(np.ascontiguousarray(im)))
            samples.append(DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                                       scale_factor=(1.0, 1.0), thickness=float(t))))
        with torch.no_grad():
            out = self.model.test_step(dict(inputs=inputs, data_samples=samples))
        res = []
        for o in out:
            p = o.pred_instances
            res.append(np.concatenate([p.bboxes.float().cpu().numpy().reshape(-1, 4),
                                       p.scores.float().cpu().numpy().reshape(-1, 1)], axis=1))
        return res


def build_detector(cfg, checkpoint: str, device: str) -> MMDetDetector:
    """The config's model with the checkpoint's weights, in eval mode on ``device``."""
    import torch
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.runner import load_checkpoint

    from .runner import checkpoint_safe_globals

    register_all_modules(init_default_scope=True)
    model_cfg = cfg.model.copy()
    if "backbone" in model_cfg and "pretrained" in model_cfg.backbone:
        model_cfg.backbone.pretrained = None  # the checkpoint brings the weights: no download
    try:
        model = MODELS.build(model_cfg)
    except (KeyError, TypeError, ValueError) as err:  # a bad value in the config's model section
        raise UserError(f"{cfg.filename}: cannot build the model: {err}") from None
    try:
        with checkpoint_safe_globals(bool(cfg.get("trusted_checkpoints", False))):
            load_checkpoint(model, checkpoint, map_location="cpu", strict=True, logger="silent")
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"{checkpoint}: does not load into the model of {cfg.filename}: {first}") from None
    model.to(torch.device(device)).eval()
    return MMDetDetector(model, device)
