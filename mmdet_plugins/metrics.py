"""DeepLesion FROC as an mmengine metric: thin glue over :mod:`alignshift.evaluation`.

Also writes the predictions file read by ``tools/eval_froc.py``; its format is defined once, in
:mod:`alignshift.evaluation.predictions`.

Ground truth. mmdet's test pipelines load the annotations after ``Resize`` (every config here
does), so the boxes of ``gt_instances`` are in original-image pixels, like the predictions
(``rescale=True``). With ``ann_file`` the ground truth, the patients and the lesion fields come
from the annotation file instead, matched by ``file_name``: what the breakdowns, the bootstrap and
the noisy-lesion option need.
"""

from __future__ import annotations

import os.path as osp
from typing import Optional, Sequence, Union

import numpy as np
from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from alignshift.errors import UserError
from alignshift.evaluation import DEFAULT_FPS, format_froc_table, froc_breakdown, save_froc_report
from alignshift.evaluation.breakdown import (
    DEFAULT_INTERVAL_BINS_MM,
    DEFAULT_SIZE_BINS_MM,
    evaluate,
    make_groupings,
    parse_breakdown,
    save_report,
)
from alignshift.evaluation.evalset import EvalSet, evalset_from_dicts
from alignshift.evaluation.paper import compare_with_paper
from alignshift.evaluation.paper import paper_variant as published_figures
from alignshift.evaluation.predictions import (
    PREDICTIONS_FORMAT,
    _read_ground_truth,
    join_ground_truth,
    parse_predictions,
    write_predictions,
)
from alignshift.evaluation.protocol import FROCProtocol

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
        iou_thr: overlap needed for a hit.
        out_dir: where to write ``froc_table.txt``, ``froc.png`` and ``froc.json`` (and
            ``froc_breakdown.{txt,md,json,png}`` with a breakdown, a bootstrap or a protocol
            option) (``tools/train.py``/``test.py`` set it to the work dir); None writes nothing.
        prediction_file: also write every prediction there (``tools/test.py --out``), with the
            patients and lesion fields when ``ann_file`` is given.
        paper_variant: also log the paper's figures of this variant beside the measured ones
            (:func:`alignshift.evaluation.paper.compare_with_paper`); the official configs set it.
        ann_file: the annotation file of the evaluated split (``tools/prepare_deeplesion.py``);
            the ground truth, patients and lesion fields are then read from it.
        breakdown: ``"type,size,interval"`` (or a list; ``"type:liver"`` picks one group): the
            groupings of :mod:`alignshift.evaluation.breakdown`. ``type`` and ``size`` need
            ``ann_file``.
        bootstrap: patient resamples for 95 % intervals (0: none); needs ``ann_file`` or a
            ``patient`` in every sample's metainfo.
        seed, level: of the bootstrap.
        noisy, criterion, avg: the protocol options of
            :class:`alignshift.evaluation.FROCProtocol` (``"excluded"``/``"kept"``,
            ``"iou"``/``"iobb"``, ``"0.5-4"``/``"mp3d"``).
        size_bins, interval_bins: bin edges in mm of the ``size`` and ``interval`` groupings.
    """

    default_prefix = "deeplesion"

    def __init__(self, fps: Sequence[float] = DEFAULT_FPS, iou_thr: float = 0.5,
                 out_dir: Optional[str] = None, prediction_file: Optional[str] = None,
                 collect_device: str = "cpu", prefix: Optional[str] = None,
                 paper_variant: Optional[str] = None, ann_file: Optional[str] = None,
                 breakdown: Union[str, Sequence[str], None] = None, bootstrap: int = 0,
                 seed: int = 0, level: float = 0.95, noisy: str = "excluded",
                 criterion: str = "iou", avg: str = "0.5-4",
                 size_bins: Sequence[float] = DEFAULT_SIZE_BINS_MM,
                 interval_bins: Sequence[float] = DEFAULT_INTERVAL_BINS_MM) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.fps, self.iou_thr = tuple(fps), iou_thr
        self.out_dir, self.prediction_file = out_dir, prediction_file
        self.paper_variant = paper_variant  # model zoo: paper vs measured
        if paper_variant is not None:
            published_figures(paper_variant)  # an unknown name fails here, not after the test run
        # every option is checked here, not after the test run
        try:
            self.protocol = FROCProtocol(noisy=noisy, criterion=criterion, iou_thr=iou_thr,
                                         avg=avg, fps=tuple(fps))
        except ValueError as e:
            raise UserError(f"DeepLesionFROCMetric: {e}") from None
        spec = parse_breakdown(breakdown)
        make_groupings(list(dict.fromkeys(n for n, _ in spec)), size_bins, interval_bins)
        if int(bootstrap) < 0 or (bootstrap and not 0 < level < 1):
            raise UserError(f"DeepLesionFROCMetric: bootstrap must be >= 0 and level in (0, 1), "
                            f"got {bootstrap} and {level}")
        if ann_file is not None and not osp.isfile(ann_file):
            raise UserError(f"DeepLesionFROCMetric: annotation file {osp.abspath(ann_file)} does "
                            "not exist")
        self.ann_file, self.breakdown, self.bootstrap = ann_file, breakdown, int(bootstrap)
        self.seed, self.level = seed, level
        self.size_bins, self.interval_bins = tuple(size_bins), tuple(interval_bins)

    @property
    def _detailed(self) -> bool:
        """Whether the breakdown report is asked for (anything beyond the paper's table)."""
        return bool(self.breakdown or self.bootstrap or self.ann_file
                    or self.protocol != FROCProtocol(iou_thr=self.iou_thr, fps=self.fps))

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for s in data_samples:
            pred = s["pred_instances"]
            boxes = pred["bboxes"].detach().cpu().numpy()
            scores = pred["scores"].detach().cpu().numpy()
            gt = s["gt_instances"]["bboxes"]
            gt = (gt.tensor if hasattr(gt, "tensor") else gt).detach().cpu().numpy()
            if "thickness" not in s:
                raise KeyError(f"sample {s.get('img_path')} has no 'thickness' metainfo")
            rec = dict(img_id=s.get("img_id"), file_name=s.get("file_name", s.get("img_path")),
                       thickness=float(s["thickness"]), gt_boxes=gt.round(3).tolist(),
                       pred_boxes=np.hstack([boxes, scores[:, None]]).round(4).tolist())
            if s.get("patient") is not None:
                rec["patient"] = int(s["patient"])
            self.results.append(rec)

    def _evalset(self, results: list) -> EvalSet:
        """The evaluated split: the records, with the annotation file's ground truth if given."""
        if self.ann_file is None:
            return evalset_from_dicts(results, "the test predictions")
        doc = {"format": PREDICTIONS_FORMAT, "images": results}
        gts, noisy = _read_ground_truth(self.ann_file)
        recs, _ = join_ground_truth(parse_predictions(doc, "the test predictions"), self.ann_file,
                                    ground_truth=gts)
        run = {r.get("file_name") for r in results}  # the images tested (all, unless a subset)
        recs = [r for r in recs if r.file_name in run]
        return EvalSet.from_records(recs, self.ann_file, noisy, from_annotations=True)

    def compute_metrics(self, results: list) -> dict:
        logger = MMLogger.get_current_instance()
        data = self._evalset(results) if self._detailed else None
        if data is not None and self.ann_file:
            # the paper's table from the annotation file's ground truth, noisy lesions excluded
            # as published (the breakdown report below follows the protocol options)
            ex = data.for_noisy("excluded")
            res = froc_breakdown(ex.pred, ex.gt, ex.thickness, self.fps, self.iou_thr)
        else:
            res = evaluate_predictions(results, self.fps, self.iou_thr)
        title = "DeepLesion FROC (sensitivity %)"
        if self.out_dir:
            table = save_froc_report(res, self.out_dir, title)
        else:
            table = format_froc_table(res, self.fps, title=title)
        logger.info("\n" + table)
        if self.paper_variant:  # model zoo: paper vs measured
            logger.info("\n" + compare_with_paper(res, self.paper_variant, self.fps))
        metrics = {}
        for subset, r in res.items():
            for f_, s in zip(self.fps, r["sens"]):
                metrics[f"{subset}@{f_:g}"] = float(s)
            metrics[f"{subset}_avg"] = r["avg"]
        if data is not None:
            report = evaluate(data, self.protocol, self.breakdown, self.bootstrap, self.seed,
                              self.level, self.size_bins, self.interval_bins)
            if self.out_dir:
                names = save_report(report, self.out_dir)
                logger.info(f"wrote {', '.join(names)} to {osp.abspath(self.out_dir)}")
            logger.info("\n" + report.format_text())
            for gname, groups in report.breakdowns.items():
                for label, e in groups.items():
                    if e.avg is not None:
                        metrics[f"{gname}:{label}_avg"] = e.avg
        if self.prediction_file:
            records = results if data is None or not self.ann_file else _records(data, results)
            noisy = data.noisy_lesions if data is not None else None
            write_predictions(records, self.prediction_file, noisy)
            logger.info(f"wrote the predictions to {osp.abspath(self.prediction_file)}")
        if self.out_dir:
            logger.info(f"wrote froc_table.txt, froc.png and froc.json to {osp.abspath(self.out_dir)}")
        return metrics


def _records(data: EvalSet, results: list) -> list:
    """The predictions-file records of ``data`` (ground truth and fields of the annotation file)."""
    ids = {r.get("file_name"): r.get("img_id") for r in results}
    bounds = np.cumsum([0] + [len(g) for g in data.gt])
    out = []
    for i, name in enumerate(data.file_names):
        a, b = bounds[i], bounds[i + 1]
        rec = dict(img_id=ids.get(name), file_name=name, thickness=float(data.thickness[i]))
        if data.patient is not None:
            rec["patient"] = int(data.patient[i])
        rec["gt_boxes"] = np.round(data.gt[i], 3).tolist()
        if data.lesion_type is not None:
            rec["gt_lesion_type"] = [int(v) for v in data.lesion_type[a:b]]
        if data.diameters_mm is not None:
            rec["gt_diameters_mm"] = np.round(data.diameters_mm[a:b], 4).tolist()
        if data.noisy is not None:
            rec["gt_noisy"] = [bool(v) for v in data.noisy[a:b]]
        rec["pred_boxes"] = np.round(data.pred[i], 4).tolist()
        out.append(rec)
    return out
