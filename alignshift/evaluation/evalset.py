"""One split's detections and lesions, with what the breakdowns and the bootstrap need.

An :class:`EvalSet` is built from a predictions file (optionally joined with an annotation file of
``tools/prepare_deeplesion.py``, which then supplies the ground truth) or from the records of the
metric. Fields that older files lack stay ``None``: only what needs them fails, with one line
naming the field (:meth:`EvalSet.require`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional, Sequence

import numpy as np

from .predictions import (
    ImagePredictions,
    PredictionsError,
    _read_ground_truth,
    _read_predictions,
    join_ground_truth,
    parse_predictions,
)

__all__ = ["EvalSet", "evalset_from_dicts", "ground_truth_evalset", "load_evalset"]

# EvalSet attribute -> (field in a predictions file, field in an annotation file)
FIELD_NAMES = {"patient": ("patient", "patient"), "lesion_type": ("gt_lesion_type", "lesion_type"),
               "diameters_mm": ("gt_diameters_mm", "diameters_mm"), "noisy": ("gt_noisy", "noisy")}


@dataclass
class EvalSet:
    """Detections and ground truth of ``I`` images and their ``L`` lesions (image order).

    Attributes:
        file_names: (I,) image names (None where unknown).
        thickness: (I,) slice interval in mm.
        pred: I arrays (N_i, 5) x1, y1, x2, y2, score.
        gt: I arrays (M_i, 4) x1, y1, x2, y2.
        patient: (I,) Patient_index, or None.
        lesion_type: (L,) 1-8 (DeepLesion's coarse types), -1 unlabelled, or None.
        diameters_mm: (L, 2) long and short diameter in mm, or None.
        noisy: (L,) Possibly_noisy flags, or None.
        noisy_lesions: whether the source kept the noisy lesions ("kept"), left them out
            ("excluded"), or does not say (None).
        source: the file(s) it came from, for messages.
        lacking: attribute -> the first image without it (for the message of :meth:`require`).
    """

    file_names: List[Optional[str]]
    thickness: np.ndarray
    pred: List[np.ndarray]
    gt: List[np.ndarray]
    patient: Optional[np.ndarray] = None
    lesion_type: Optional[np.ndarray] = None
    diameters_mm: Optional[np.ndarray] = None
    noisy: Optional[np.ndarray] = None
    noisy_lesions: Optional[str] = None
    source: str = "<predictions>"
    lacking: Dict[str, str] = field(default_factory=dict)
    from_annotations: bool = False

    @property
    def num_images(self) -> int:
        return len(self.gt)

    @property
    def num_lesions(self) -> int:
        return int(sum(len(g) for g in self.gt))

    @property
    def gt_img(self) -> np.ndarray:
        """(L,) the image of each lesion."""
        return np.repeat(np.arange(self.num_images), [len(g) for g in self.gt])

    @property
    def num_patients(self) -> Optional[int]:
        return None if self.patient is None else len(np.unique(self.patient))

    def require(self, attr: str, purpose: str) -> np.ndarray:
        """The attribute ``attr``, or a :class:`PredictionsError` naming the missing field."""
        value = getattr(self, attr)
        if value is None:
            in_pred, in_ann = FIELD_NAMES[attr]
            where = self.lacking.get(attr, "its images")
            field_name = in_ann if self.from_annotations else in_pred
            raise PredictionsError(f"{self.source}: {where} has no field '{field_name}', which "
                                   f"{purpose} needs", field=attr)
        return value

    @classmethod
    def from_records(cls, records: Sequence[ImagePredictions], source: str = "<predictions>",
                     noisy_lesions: Optional[str] = None, from_annotations: bool = False
                     ) -> EvalSet:
        """Collect checked records (:func:`alignshift.evaluation.read_predictions`, or joined with
        an annotation file by :func:`alignshift.evaluation.join_ground_truth`).

        Raises :class:`PredictionsError` for a record without ground truth, an image named twice
        and a split without any lesion.
        """
        seen: Dict[str, int] = {}
        for i, r in enumerate(records):
            if r.gt is None:
                raise PredictionsError(f"{source}: images[{i}] ({r.file_name}) has no 'gt_boxes'; "
                                       "the ground truth must come from an annotation file of "
                                       "tools/prepare_deeplesion.py", field="gt_boxes")
            if r.file_name is not None:
                if r.file_name in seen:
                    raise PredictionsError(f"{source}: images[{i}] ({r.file_name}) names the same "
                                           f"image as images[{seen[r.file_name]}]; each image must "
                                           "appear once")
                seen[r.file_name] = i
        if not records:
            raise PredictionsError(f"{source}: holds no images; nothing to evaluate")
        if sum(len(r.gt) for r in records) == 0:
            raise PredictionsError(f"{source}: no ground-truth boxes in any of its {len(records)} "
                                   "images; sensitivity is undefined")
        lacking: Dict[str, str] = {}

        def name(i: int) -> str:
            r = records[i]
            return f"images[{i}] ({r.file_name})" if r.file_name else f"images[{i}]"

        patient = None
        miss = [i for i, r in enumerate(records) if r.patient is None]
        if miss:
            lacking["patient"] = name(miss[0])
        else:
            patient = np.array([r.patient for r in records], np.int64)
        cols = {}
        for attr, rec_attr, shape in (("lesion_type", "gt_lesion_type", ()),
                                      ("diameters_mm", "gt_diameters_mm", (2,)),
                                      ("noisy", "gt_noisy", ())):
            miss = [i for i, r in enumerate(records) if len(r.gt) and getattr(r, rec_attr) is None]
            if miss:
                lacking[attr] = name(miss[0])
                cols[attr] = None
                continue
            parts = [np.asarray(getattr(r, rec_attr)).reshape((len(r.gt),) + shape)
                     if getattr(r, rec_attr) is not None else np.zeros((0,) + shape)
                     for r in records]
            cols[attr] = np.concatenate(parts)
        return cls(file_names=[r.file_name for r in records],
                   thickness=np.array([r.thickness for r in records], np.float64),
                   pred=[r.pred for r in records], gt=[r.gt for r in records], patient=patient,
                   lesion_type=None if cols["lesion_type"] is None else cols["lesion_type"].astype(np.int64),
                   diameters_mm=cols["diameters_mm"],
                   noisy=None if cols["noisy"] is None else cols["noisy"].astype(bool),
                   noisy_lesions=noisy_lesions, source=source, lacking=lacking,
                   from_annotations=from_annotations)

    @classmethod
    def from_arrays(cls, pred: Sequence[np.ndarray], gt: Sequence[np.ndarray],
                    thickness: Sequence[float], patient: Optional[Sequence[int]] = None,
                    file_names: Optional[Sequence[str]] = None,
                    lesion_type: Optional[Sequence[Sequence[int]]] = None,
                    diameters_mm: Optional[Sequence[np.ndarray]] = None,
                    noisy: Optional[Sequence[Sequence[bool]]] = None,
                    source: str = "<arrays>", noisy_lesions: Optional[str] = None) -> EvalSet:
        """An :class:`EvalSet` of in-memory results, checked as a predictions file is.

        Args:
            pred: I arrays (N_i, 5) x1, y1, x2, y2, score.
            gt: I arrays (M_i, 4) x1, y1, x2, y2.
            thickness: (I,) slice interval in mm.
            patient: (I,) Patient_index (the bootstrap needs it), or None.
            file_names: (I,) image names (to pair two detectors by name), or None.
            lesion_type, diameters_mm, noisy: per image, one entry per ground-truth box
                ((M_i,) codes, (M_i, 2) mm, (M_i,) flags), or None.
            source: the name used in messages.
            noisy_lesions: "kept", "excluded" or None, as in a predictions file.

        Two detectors on the same split::

            a = EvalSet.from_arrays(pred_a, gt, thickness, patient)
            b = a.with_predictions(pred_b)
            compare(a, b, breakdown="interval", n_resamples=1000)
        """
        n = len(gt)
        for what, seq in (("pred", pred), ("thickness", thickness), ("patient", patient),
                          ("file_names", file_names), ("lesion_type", lesion_type),
                          ("diameters_mm", diameters_mm), ("noisy", noisy)):
            if seq is not None and len(seq) != n:
                raise PredictionsError(f"{source}: {what} has {len(seq)} entries, gt has {n} images; "
                                       "expected one per image", field=what)
        images = []
        for i in range(n):
            rec = dict(thickness=float(thickness[i]),
                       gt_boxes=np.asarray(gt[i], np.float64).reshape(-1, 4).tolist(),
                       pred_boxes=np.asarray(pred[i], np.float64).reshape(-1, 5).tolist())
            if file_names is not None:
                rec["file_name"] = file_names[i]
            if patient is not None:
                rec["patient"] = int(patient[i])
            for key, seq, conv in (("gt_lesion_type", lesion_type, int),
                                   ("gt_diameters_mm", diameters_mm, None),
                                   ("gt_noisy", noisy, bool)):
                if seq is not None:
                    vals = np.asarray(seq[i])
                    rec[key] = vals.tolist() if conv is None else [conv(v) for v in vals.ravel()]
            images.append(rec)
        return evalset_from_dicts(images, source, noisy_lesions)

    def with_predictions(self, pred: Sequence[np.ndarray], source: Optional[str] = None) -> EvalSet:
        """The same images and ground truth with another detector's ``pred`` (I arrays (N_i, 5)),
        checked as a predictions file is."""
        if len(pred) != self.num_images:
            raise PredictionsError(f"{source or self.source}: pred has {len(pred)} entries for "
                                   f"{self.num_images} images; expected one per image", field="pred")
        doc = {"format": "alignshift-predictions/1",
               "images": [dict(thickness=1.0, pred_boxes=np.asarray(p, np.float64).reshape(-1, 5).tolist())
                          for p in pred]}
        checked = [r.pred for r in parse_predictions(doc, source or self.source)]
        return replace(self, pred=checked, source=source or self.source)

    def select_images(self, keep: np.ndarray) -> EvalSet:
        """The images where ``keep`` (I,) is True, with their lesions."""
        keep = np.asarray(keep, bool)
        idx = np.flatnonzero(keep)
        les = keep[self.gt_img]
        return replace(self, file_names=[self.file_names[i] for i in idx],
                       thickness=self.thickness[idx], pred=[self.pred[i] for i in idx],
                       gt=[self.gt[i] for i in idx],
                       patient=None if self.patient is None else self.patient[idx],
                       lesion_type=None if self.lesion_type is None else self.lesion_type[les],
                       diameters_mm=None if self.diameters_mm is None else self.diameters_mm[les],
                       noisy=None if self.noisy is None else self.noisy[les])

    def select_lesions(self, keep: np.ndarray) -> EvalSet:
        """The lesions where ``keep`` (L,) is True; every image stays."""
        keep = np.asarray(keep, bool)
        bounds = np.cumsum([0] + [len(g) for g in self.gt])
        gt = [g[keep[a:b]] for g, a, b in zip(self.gt, bounds[:-1], bounds[1:])]
        return replace(self, gt=gt,
                       lesion_type=None if self.lesion_type is None else self.lesion_type[keep],
                       diameters_mm=None if self.diameters_mm is None else self.diameters_mm[keep],
                       noisy=None if self.noisy is None else self.noisy[keep])

    def for_noisy(self, noisy: str) -> EvalSet:
        """The set under the protocol's noisy-lesion option ("excluded" or "kept").

        "excluded" drops the lesions flagged noisy and the images whose lesions were all noisy,
        as the published protocol does; a source without flags is taken as holding no noisy
        lesion (prepare_deeplesion leaves them out by default). "kept" needs a source that kept
        them, with their flags.
        """
        if noisy == "excluded":
            if self.noisy is None or not self.noisy.any():
                return self
            n_les = np.bincount(self.gt_img, minlength=self.num_images)
            n_noisy = np.bincount(self.gt_img, weights=self.noisy, minlength=self.num_images)
            only_noisy = (n_les > 0) & (n_noisy == n_les)
            return self.select_lesions(~self.noisy).select_images(~only_noisy)
        if noisy != "kept":
            raise ValueError(f"noisy must be 'excluded' or 'kept', got {noisy!r}")
        if self.noisy_lesions == "excluded":
            raise PredictionsError(f"{self.source}: its ground truth was written without the noisy "
                                   "lesions (noisy_lesions: excluded); keeping them needs "
                                   "annotations prepared with the noisy lesions included")
        flags = self.require("noisy", "keeping the noisy lesions")
        if self.noisy_lesions is None and not flags.any():
            raise PredictionsError(f"{self.source}: no lesion is marked noisy and the file does not "
                                   "say whether noisy lesions were left out (field 'noisy_lesions'); "
                                   "keeping them needs annotations prepared with the noisy lesions "
                                   "included")
        return self


def load_evalset(predictions: str, gt: Optional[str] = None) -> tuple:
    """Read a predictions file, its ground truth from ``gt`` (an annotation file) when given.

    Returns the :class:`EvalSet` and how many images of the annotation file had no predictions
    (they count as images without detections). Predictions of an image that the annotation file
    lacks, an image named twice and a record without ground truth are one-line
    :class:`PredictionsError` s naming the image.
    """
    recs, noisy = _read_predictions(predictions)
    without = 0
    if gt is not None:
        gts, noisy = _read_ground_truth(gt)
        recs, without = join_ground_truth(recs, gt, ground_truth=gts)
        return EvalSet.from_records(recs, f"{predictions} with {gt}", noisy, True), without
    return EvalSet.from_records(recs, predictions, noisy), without


def ground_truth_evalset(gt: str) -> EvalSet:
    """The split of an annotation file (``tools/prepare_deeplesion.py``) without any detection.

    For checking, before a test run, that what a report will need is there: the patients, the
    lesion fields of a breakdown, the lesions of a picked group.
    """
    gts, noisy = _read_ground_truth(gt)
    recs, _ = join_ground_truth([], gt, ground_truth=gts)
    return EvalSet.from_records(recs, gt, noisy, True)


def evalset_from_dicts(images: Sequence[dict], source: str = "<predictions>",
                       noisy_lesions: Optional[str] = None) -> EvalSet:
    """An :class:`EvalSet` of records in the predictions-file format (checked as the reader does)."""
    doc = {"format": "alignshift-predictions/1", "images": list(images)}
    return EvalSet.from_records(parse_predictions(doc, source), source, noisy_lesions)
