"""DeepLesion FROC as an mmengine metric: thin glue over :mod:`alignshift.evaluation`.

Also writes the predictions file read by ``tools/eval_froc.py``; its format is defined once, in
:mod:`alignshift.evaluation.predictions`.
"""

from __future__ import annotations

import os.path as osp
from typing import Optional, Sequence

import numpy as np
from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from alignshift.evaluation import DEFAULT_FPS, format_froc_table, froc_breakdown, save_froc_report
from alignshift.evaluation.paper import compare_with_paper
from alignshift.evaluation.paper import paper_variant as published_figures
from alignshift.evaluation.predictions import PREDICTIONS_FORMAT, write_predictions

__all__ = ["DeepLesionFROCMetric", "PREDICTIONS_FORMAT", "evaluate_predictions", "write_predictions"]


def evaluate_predictions(images: Sequence[dict], fps: Sequence[float] = DEFAULT_FPS,
                         iou_thr: float = 0.5) -> dict:
    """FROC all/thin/thick of prediction records (dicts as in the predictions file)."""
    preds = [np.asarray(r["pred_boxes"], np.float64).reshape(-1, 5) for r in images]
    gts = [np.asarray(r["gt_boxes"], np.float64).reshape(-1, 4) for r in images]
    return froc_breakdown(preds, gts, [r["thickness"] for r in images], fps, iou_thr)


@METRICS.register_module()
class DeepLesionFROCMetric(BaseMetric):
    """Sensitivity at 0.5-16 FPs per image for all, thin (<= 2 mm) and thick test images.

    Args:
        fps: the FP rates reported.
        iou_thr: IoU needed for a hit.
        out_dir: where to write ``froc_table.txt``, ``froc.png`` and ``froc.json``
            (``tools/train.py``/``test.py`` set it to the work dir); None writes nothing.
        prediction_file: also write every prediction there (``tools/test.py --out``).
        paper_variant: also log the paper's figures of this variant beside the measured ones
            (:func:`alignshift.evaluation.paper.compare_with_paper`); the official configs set it.
    """

    default_prefix = "deeplesion"

    def __init__(self, fps: Sequence[float] = DEFAULT_FPS, iou_thr: float = 0.5,
                 out_dir: Optional[str] = None, prediction_file: Optional[str] = None,
                 collect_device: str = "cpu", prefix: Optional[str] = None,
                 paper_variant: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.fps, self.iou_thr = tuple(fps), iou_thr
        self.out_dir, self.prediction_file = out_dir, prediction_file
        self.paper_variant = paper_variant  # model zoo: paper vs measured
        if paper_variant is not None:
            published_figures(paper_variant)  # an unknown name fails here, not after the test run

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for s in data_samples:
            pred = s["pred_instances"]
            boxes = pred["bboxes"].detach().cpu().numpy()
            scores = pred["scores"].detach().cpu().numpy()
            gt = s["gt_instances"]["bboxes"]
            gt = (gt.tensor if hasattr(gt, "tensor") else gt).detach().cpu().numpy()
            # gt_instances follow the resized image; predictions are in original pixels
            sx, sy = s.get("scale_factor", (1.0, 1.0))
            gt = gt / np.array([sx, sy, sx, sy], np.float32)
            if "thickness" not in s:
                raise KeyError(f"sample {s.get('img_path')} has no 'thickness' metainfo")
            self.results.append(dict(
                img_id=s.get("img_id"), file_name=s.get("file_name", s.get("img_path")),
                thickness=float(s["thickness"]), gt_boxes=gt.round(3).tolist(),
                pred_boxes=np.hstack([boxes, scores[:, None]]).round(4).tolist()))

    def compute_metrics(self, results: list) -> dict:
        res = evaluate_predictions(results, self.fps, self.iou_thr)
        title = "DeepLesion FROC (sensitivity %)"
        if self.out_dir:
            table = save_froc_report(res, self.out_dir, title)
        else:
            table = format_froc_table(res, self.fps, title=title)
        MMLogger.get_current_instance().info("\n" + table)
        if self.paper_variant:  # model zoo: paper vs measured
            MMLogger.get_current_instance().info("\n" + compare_with_paper(res, self.paper_variant, self.fps))
        if self.prediction_file:
            write_predictions(results, self.prediction_file)
            MMLogger.get_current_instance().info(
                f"wrote the predictions to {osp.abspath(self.prediction_file)}")
        if self.out_dir:
            MMLogger.get_current_instance().info(
                f"wrote froc_table.txt, froc.png and froc.json to {osp.abspath(self.out_dir)}")
        metrics = {}
        for subset, r in res.items():
            for f_, s in zip(self.fps, r["sens"]):
                metrics[f"{subset}@{f_:g}"] = float(s)
            metrics[f"{subset}_avg"] = r["avg"]
        return metrics
