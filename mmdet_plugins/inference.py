"""An mmdet detector as the callable :func:`alignshift.inference.run_detector` expects.

``tools/infer_volume.py`` builds the config's model with :func:`build_detector` and prepares the
scan's slices as the config's test pipeline prepares DeepLesion
(:func:`alignshift.inference.preprocess_from_test_pipeline`, framework-free).
"""

from __future__ import annotations

from typing import List, Optional

import numpy as np

from alignshift.errors import UserError

__all__ = ["MMDetDetector", "build_detector"]


class MMDetDetector:
    """An mmdet detector as the callable :func:`alignshift.inference.run_detector` expects.

    ``__call__(images: (B, D, H, W) float32 [0, 255], thickness: (B,), scale_factors: (B, 2))
    -> B arrays (N, 5)``: it takes the scale factors (``takes_scale_factor``), so the model rescales
    its boxes to the slice's pixels before its NMS, exactly as in ``tools/test.py`` (the published
    configs' NMS counts box sides with +1, which is not scale-invariant).
    """

    takes_scale_factor = True

    def __init__(self, model, device: str) -> None:
        self.model, self.device = model, device

    def __call__(self, images: np.ndarray, thickness: np.ndarray,
                 scale_factors: Optional[np.ndarray] = None) -> List[np.ndarray]:
        import torch
        from mmdet.structures import DetDataSample

        if scale_factors is None:
            scale_factors = np.ones((len(images), 2))
        inputs, samples = [], []
        for im, t, (sx, sy) in zip(images, thickness, np.asarray(scale_factors, np.float64)):
            h, w = im.shape[1:]
            inputs.append(torch.from_numpy(np.ascontiguousarray(im)))
            ori = (int(round(h / sy)), int(round(w / sx)))
            samples.append(DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=ori,
                                                       scale_factor=(float(sx), float(sy)),
                                                       thickness=float(t))))
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
