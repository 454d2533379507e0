"""Flip test-time augmentation, mmdet 3's way, for the thickness-aware detectors.

``configs/_base_/tta.py`` holds the ``tta_model`` / ``tta_pipeline`` pair that ``tools/test.py
--tta`` swaps in (as mmdet's own ``tools/test.py`` does); :func:`enable_flip_tta` makes the same
swap on any config, deriving the TTA pipeline from the config's own test pipeline (so its
``img_scale`` and ``meta_keys`` are kept). Each image is run as is and mirrored; the thickness
travels in every view's metainfo (``PackDetInputs`` meta_keys), and :class:`DeepLesionTTAModel`
merges the views with the detector's own test NMS. :func:`flip_tta_detector` gives volume
inference the same merge (:func:`alignshift.inference.tta.flip_tta`).
"""

from __future__ import annotations

import copy
from typing import List, Optional, Tuple

from mmdet.models.test_time_augs import DetTTAModel
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import ConfigDict

from alignshift.inference.tta import flip_tta

__all__ = ["DeepLesionTTAModel", "enable_flip_tta", "flip_tta_pipeline", "rcnn_merge_settings",
           "flip_tta_detector"]


def rcnn_merge_settings(test_cfg) -> Tuple[float, int, float]:
    """``(iou_thr, max_per_img, offset)`` of a two-stage detector's ``test_cfg.rcnn``."""
    rcnn = (test_cfg or {}).get("rcnn") or {}
    nms = rcnn.get("nms") or {}
    if nms.get("type", "nms") != "nms" or "iou_threshold" not in nms:
        raise ValueError(f"test_cfg.rcnn.nms must be dict(type='nms', iou_threshold=...), got {nms}")
    return float(nms["iou_threshold"]), int(rcnn.get("max_per_img", 100)), float(nms.get("offset", 0))


@MODELS.register_module()
class DeepLesionTTAModel(DetTTAModel):
    """``DetTTAModel`` for :class:`~mmdet_plugins.ThicknessAwareFasterRCNN`.

    - ``tta_cfg`` None takes the merge NMS and ``max_per_img`` from the wrapped detector's
      ``test_cfg.rcnn`` (the NMS its single-view predictions already had);
    - every view of an image must carry the same ``thickness`` metainfo (the backbone reads it
      per view);
    - the merged sample is the unflipped view, so its ground truth and metainfo are those of the
      original image.
    """

    def __init__(self, module, tta_cfg: Optional[dict] = None, data_preprocessor=None) -> None:
        super().__init__(module=module, tta_cfg=tta_cfg, data_preprocessor=data_preprocessor)
        if self.tta_cfg is None:
            rcnn = dict(getattr(self.module, "test_cfg", None) or {}).get("rcnn") or {}
            if "nms" not in rcnn:
                raise ValueError("DeepLesionTTAModel: give tta_cfg=dict(nms=..., max_per_img=...) "
                                 "or wrap a detector with test_cfg.rcnn.nms")
            self.tta_cfg = ConfigDict(nms=copy.deepcopy(dict(rcnn["nms"])),
                                      max_per_img=int(rcnn.get("max_per_img", 100)))
        elif not isinstance(self.tta_cfg, ConfigDict):
            self.tta_cfg = ConfigDict(self.tta_cfg)

    def test_step(self, data):
        samples = data["data_samples"] if isinstance(data, dict) else None
        if samples:
            for i, views in enumerate(zip(*samples)):
                values = {v.metainfo.get("thickness") for v in views}
                if len(values) != 1 or None in values:
                    name = views[0].metainfo.get("img_path", f"image {i}")
                    raise KeyError(f"{name}: its test-time views carry thickness {sorted(map(str, values))}; "
                                   "each view needs the same 'thickness' metainfo (PackDetInputs "
                                   "meta_keys)")
        return super().test_step(data)

    def _merge_single_sample(self, data_samples: List[DetDataSample]) -> DetDataSample:
        # the unflipped view first: DetTTAModel returns the first view with the merged boxes
        order = sorted(range(len(data_samples)),
                       key=lambda i: bool(data_samples[i].metainfo.get("flip", False)))
        return super()._merge_single_sample([data_samples[i] for i in order])


def flip_tta_pipeline(test_pipeline: list) -> list:
    """The flip TTA pipeline of a test pipeline: what follows its ``Resize`` runs once per view.

    ``[Load..., Resize, LoadAnnotations, PackDetInputs]`` becomes ``[Load..., TestTimeAug([[Resize],
    [RandomFlip(prob=0), RandomFlip(prob=1)], [LoadAnnotations], [PackDetInputs]])]``: the ground
    truth is loaded after the flip, in the original image's orientation and pixels, as the
    metric expects.
    """
    pipe = [copy.deepcopy(dict(t)) for t in test_pipeline]
    idx = next((i for i, t in enumerate(pipe) if t.get("type") == "Resize"), None)
    if idx is None:
        raise ValueError("the test pipeline has no Resize to put the flips after")
    head, resize, tail = pipe[:idx], pipe[idx], pipe[idx + 1:]
    if not tail or tail[-1].get("type") != "PackDetInputs":
        raise ValueError("the test pipeline must end with PackDetInputs")
    keys = tail[-1].get("meta_keys")
    if keys is not None and not {"flip", "flip_direction", "thickness"} <= set(keys):
        raise ValueError("PackDetInputs meta_keys must include 'flip', 'flip_direction' and "
                         f"'thickness' for flip TTA, got {keys}")
    flips = [dict(type="RandomFlip", prob=0.0), dict(type="RandomFlip", prob=1.0)]
    return head + [dict(type="TestTimeAug", transforms=[[resize], flips] + [[t] for t in tail])]


def enable_flip_tta(cfg) -> None:
    """Swap a config's model and test pipeline for flip TTA, in place (``tools/test.py --tta``).

    Uses the config's ``tta_model`` / ``tta_pipeline`` when it has them (e.g. from
    ``configs/_base_/tta.py``), else :class:`DeepLesionTTAModel` and :func:`flip_tta_pipeline` of
    its test pipeline.
    """
    tta_model = cfg.get("tta_model") or dict(type="DeepLesionTTAModel")
    cfg.model = ConfigDict(**copy.deepcopy(dict(tta_model)), module=cfg.model)
    ds = cfg.test_dataloader.dataset
    while "dataset" in ds:  # wrappers such as ConcatDataset / RepeatDataset
        ds = ds["dataset"]
    ds.pipeline = cfg.get("tta_pipeline") or flip_tta_pipeline(ds.pipeline)


def flip_tta_detector(detector, test_cfg):
    """Volume inference's detector (``(images, thickness) -> boxes``) with the same flip merge as
    :class:`DeepLesionTTAModel`, its NMS from ``test_cfg`` (the model's ``test_cfg``)."""
    iou_thr, max_per_img, offset = rcnn_merge_settings(test_cfg)
    return flip_tta(detector, iou_thr, max_per_img, offset)
