"""The predictions file: the one definition of its format, its writer and its checked reader.

``tools/test.py --out`` writes it (through ``mmdet_plugins.metrics``), ``tools/eval_froc.py``
reads it. Format ``alignshift-predictions/1``, JSON::

    {"format": "alignshift-predictions/1",
     "noisy_lesions": "excluded",                                  # optional: or "kept"
     "images": [{"img_id": 7, "file_name": "000001_01_01/109.png", "thickness": 5.0,
                 "patient": 1,                                     # optional: Patient_index
                 "gt_boxes": [[x1, y1, x2, y2], ...],              # original pixels, 0-based
                 "gt_lesion_type": [4, ...],                       # optional: 1-8, -1 unlabelled
                 "gt_diameters_mm": [[long, short], ...],          # optional
                 "gt_noisy": [false, ...],                         # optional: Possibly_noisy
                 "pred_boxes": [[x1, y1, x2, y2, score], ...]}]}

``img_id``, ``patient``, ``gt_boxes`` and the ``gt_*`` lesion fields are optional (without
``gt_boxes`` the ground truth comes from an annotation file of ``tools/prepare_deeplesion.py``, see
:func:`join_ground_truth`); the lesion fields hold one entry per ground-truth box, in the same
order. Files without them stay readable: only the breakdowns and the patient bootstrap that need a
missing field are then unavailable (:class:`alignshift.evaluation.EvalSet` names it). What the
reader rejects, each naming the file, the image and the box: an empty image list, a record that is
not an object, a thickness that is not a finite number > 0 mm, a box list of the wrong width, NaN or
inf, an inverted box (``x2 < x1`` or ``y2 < y1``), a ground-truth box without area (``x2 == x1``; a
predicted one may have it, since detectors clip boxes to the image), an image named twice, a
patient that is not a whole number, and lesion fields of the wrong length or kind.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..errors import UserError
from ..fileio import atomic_write

__all__ = ["PREDICTIONS_FORMAT", "PredictionsError", "ImagePredictions", "write_predictions",
           "read_predictions", "parse_predictions", "read_ground_truth", "join_ground_truth",
           "LESION_FIELDS", "NOISY_LESIONS"]

PREDICTIONS_FORMAT = "alignshift-predictions/1"
LESION_FIELDS = ("gt_lesion_type", "gt_diameters_mm", "gt_noisy")
NOISY_LESIONS = ("excluded", "kept")
LESION_TYPE_CODES = (-1, 1, 2, 3, 4, 5, 6, 7, 8)


class PredictionsError(UserError, ValueError):
    """A predictions or annotation file that does not hold what it should; names file, image, box."""


@dataclass
class ImagePredictions:
    """One image of a predictions file, checked.

    pred: (N, 5) x1, y1, x2, y2, score; gt: (M, 4) x1, y1, x2, y2 or None when the file has none.
    """

    file_name: Optional[str]
    thickness: float
    pred: np.ndarray
    gt: Optional[np.ndarray]
    img_id: Any = None
    patient: Optional[int] = None
    gt_lesion_type: Optional[np.ndarray] = None  # (M,) int: 1-8, -1 unlabelled
    gt_diameters_mm: Optional[np.ndarray] = None  # (M, 2) long, short
    gt_noisy: Optional[np.ndarray] = None  # (M,) bool


def write_predictions(images: Sequence[dict], path: str, noisy_lesions: Optional[str] = None) -> str:
    """Write the records ``images`` (dicts of the format above) to ``path`` atomically; return it.

    ``noisy_lesions``: whether the ground truth holds the lesions DL_info.csv marks as possibly
    noisy ("kept") or not ("excluded"); None leaves the field out (unknown).
    """
    doc: Dict[str, Any] = {"format": PREDICTIONS_FORMAT}
    if noisy_lesions is not None:
        if noisy_lesions not in NOISY_LESIONS:
            raise ValueError(f"noisy_lesions must be one of {list(NOISY_LESIONS)}, got {noisy_lesions!r}")
        doc["noisy_lesions"] = noisy_lesions
    doc["images"] = list(images)
    with atomic_write(path) as f:
        json.dump(doc, f)
    return path


def _load_json(path: str, what: str) -> Any:
    if not os.path.isfile(path):
        raise PredictionsError(f"{what} {path} does not exist" if not os.path.exists(path)
                               else f"{what} {path} is not a file")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (UnicodeDecodeError, ValueError) as e:
        raise PredictionsError(f"{path}: not a JSON {what} ({e})") from None


def _thickness(value: Any, where: str) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value <= 0:
        raise PredictionsError(f"{where}: field 'thickness' must be a finite number > 0 (mm), "
                               f"got {value!r}")
    return float(value)


def _check_boxes(arr: np.ndarray, where: str, field: str, allow_zero_size: bool) -> None:
    if not np.isfinite(arr).all():
        i = int(np.flatnonzero(~np.isfinite(arr).all(1))[0])
        raise PredictionsError(f"{where}: {field}[{i}] holds NaN or inf: {arr[i].tolist()}")
    w, h = arr[:, 2] - arr[:, 0], arr[:, 3] - arr[:, 1]
    bad = (w < 0) | (h < 0) if allow_zero_size else (w <= 0) | (h <= 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        kind = "inverted" if (w[i] < 0 or h[i] < 0) else "degenerate (no area)"
        raise PredictionsError(f"{where}: {field}[{i}] = {arr[i, :4].tolist()} is {kind}; expected "
                               f"x1 {'<=' if allow_zero_size else '<'} x2 and y1 "
                               f"{'<=' if allow_zero_size else '<'} y2 ({int(bad.sum())} such boxes)")


def _boxes(rec: dict, field: str, width: int, where: str, allow_zero_size: bool) -> np.ndarray:
    if field not in rec:
        raise PredictionsError(f"{where}: missing field '{field}'")
    try:
        arr = np.asarray(rec[field], np.float64)
        if arr.size == 0:
            return np.zeros((0, width))
        if arr.ndim != 2 or arr.shape[1] != width:
            raise ValueError
    except (TypeError, ValueError):
        raise PredictionsError(f"{where}: field '{field}' must be a list of [{width} numbers]") from None
    _check_boxes(arr, where, field, allow_zero_size)
    return arr


def _patient(value: Any, where: str) -> Optional[int]:
    if value is None:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value != int(value):
        raise PredictionsError(f"{where}: field 'patient' must be a whole number (DL_info.csv's "
                               f"Patient_index), got {value!r}")
    return int(value)


def _lesion_field(rec: dict, field: str, num_gt: Optional[int], where: str) -> Optional[np.ndarray]:
    """One of :data:`LESION_FIELDS`, checked: one entry per ground-truth box."""
    if field not in rec:
        return None
    value = rec[field]
    if num_gt is None:
        raise PredictionsError(f"{where}: field '{field}' needs 'gt_boxes' (one entry per box)")
    want = {"gt_lesion_type": "lesion type codes (1-8, -1 unlabelled)",
            "gt_diameters_mm": "[long, short] pairs of finite numbers >= 0 (mm)",
            "gt_noisy": "true/false flags"}[field]
    try:
        if not isinstance(value, list) or len(value) != num_gt:
            raise ValueError
        if field == "gt_noisy":
            if not all(isinstance(v, bool) for v in value):
                raise ValueError
            return np.array(value, bool)
        if field == "gt_lesion_type":
            if not all(isinstance(v, int) and not isinstance(v, bool) and v in LESION_TYPE_CODES
                       for v in value):
                raise ValueError
            return np.array(value, np.int64)
        arr = np.asarray(value, np.float64).reshape(num_gt, 2)
        if not (np.isfinite(arr).all() and (arr >= 0).all()):
            raise ValueError
        return arr
    except (TypeError, ValueError):
        raise PredictionsError(f"{where}: field '{field}' must hold {num_gt} {want}, one per "
                               f"ground-truth box, got {value!r:.200}") from None


def _image_name(rec: dict, i: int) -> str:
    name = rec.get("file_name")
    return f"images[{i}] ({name})" if name else f"images[{i}]"


def parse_predictions(data: Any, path: str = "<predictions>") -> List[ImagePredictions]:
    """Check the decoded JSON of a predictions file; see the module docstring for what is rejected."""
    if isinstance(data, dict) and "format" not in data and "annotations" in data:
        raise PredictionsError(f"{path} is an annotation file (the prepared DeepLesion annotations), "
                               f"not predictions (format {PREDICTIONS_FORMAT}): the two files are swapped",
                               field="predictions")
    if not isinstance(data, dict) or data.get("format") != PREDICTIONS_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise PredictionsError(f"{path}: expected a JSON object with \"format\": "
                               f"\"{PREDICTIONS_FORMAT}\" (the predictions a test run writes), "
                               f"found {found!r}")
    noisy = data.get("noisy_lesions")
    if noisy is not None and noisy not in NOISY_LESIONS:
        raise PredictionsError(f"{path}: field 'noisy_lesions' must be one of {list(NOISY_LESIONS)}, "
                               f"got {noisy!r}")
    images = data.get("images")
    if not isinstance(images, list):
        raise PredictionsError(f"{path}: field 'images' must be a list")
    if not images:
        raise PredictionsError(f"{path}: holds no images; nothing to evaluate")
    out, seen = [], {}
    for i, rec in enumerate(images):
        if not isinstance(rec, dict):
            raise PredictionsError(f"{path}: images[{i}] must be an object with thickness, "
                                   f"pred_boxes and gt_boxes, got {type(rec).__name__}")
        where = f"{path}: {_image_name(rec, i)}"
        name = rec.get("file_name")
        key = name if name is not None else rec.get("img_id")
        if key is not None:
            if key in seen:
                raise PredictionsError(f"{where}: names the same image as images[{seen[key]}]; "
                                       "each image must appear once")
            seen[key] = i
        gt = _boxes(rec, "gt_boxes", 4, where, allow_zero_size=False) if "gt_boxes" in rec else None
        num_gt = None if gt is None else len(gt)
        out.append(ImagePredictions(
            file_name=name, thickness=_thickness(rec.get("thickness"), where),
            pred=_boxes(rec, "pred_boxes", 5, where, allow_zero_size=True), gt=gt,
            img_id=rec.get("img_id"), patient=_patient(rec.get("patient"), where),
            gt_lesion_type=_lesion_field(rec, "gt_lesion_type", num_gt, where),
            gt_diameters_mm=_lesion_field(rec, "gt_diameters_mm", num_gt, where),
            gt_noisy=_lesion_field(rec, "gt_noisy", num_gt, where)))
    return out


def read_predictions(path: str) -> List[ImagePredictions]:
    """Read and check a predictions file (:class:`PredictionsError` names what is wrong)."""
    return _read_predictions(path)[0]


def _read_predictions(path: str) -> tuple:
    """:func:`read_predictions` and the file's ``noisy_lesions`` ("kept", "excluded" or None)."""
    data = _load_json(path, "predictions file")
    return parse_predictions(data, path), data.get("noisy_lesions")


def read_ground_truth(path: str) -> List[dict]:
    """Read and check an annotation file of ``tools/prepare_deeplesion.py``.

    Returns one dict per image: ``file_name``, ``thickness``, ``gt`` (M, 4) x1, y1, x2, y2, and
    what the breakdowns use where the file has it (else None): ``patient``, ``lesion_type`` (M,),
    ``diameters_mm`` (M, 2) long and short (``diameters_mm``, or the pixel ``diameters`` times the
    image's pixel spacing) and ``noisy`` (M,).
    """
    return _read_ground_truth(path)[0]


def _ann_lesion(a: dict, img: dict, where: str) -> tuple:
    """(lesion type, [long, short] mm, noisy) of one annotation; None where the file lacks it."""
    ltype = a.get("lesion_type")
    if ltype is not None and (isinstance(ltype, bool) or ltype not in LESION_TYPE_CODES):
        raise PredictionsError(f"{where}: field 'lesion_type' must be one of "
                               f"{list(LESION_TYPE_CODES)}, got {ltype!r}")
    diam = None
    try:
        if a.get("diameters_mm") is not None:
            diam = [float(v) for v in a["diameters_mm"]]
        elif a.get("diameters") is not None and img.get("spacing") is not None:
            # DeepLesion's pixels are square: the x spacing converts both diameters
            diam = [float(v) * float(img["spacing"][0]) for v in a["diameters"]]
        if diam is not None and (len(diam) != 2 or not all(math.isfinite(v) and v >= 0 for v in diam)):
            raise ValueError
    except (TypeError, ValueError, IndexError, KeyError):
        raise PredictionsError(f"{where}: fields 'diameters_mm' / 'diameters' (with the image's "
                               "'spacing') must give 2 finite numbers >= 0") from None
    noisy = a.get("noisy")
    if noisy is not None and not isinstance(noisy, bool):
        raise PredictionsError(f"{where}: field 'noisy' must be true or false, got {noisy!r}")
    return ltype, diam, noisy


def _column(values: list, dtype, shape_tail=()) -> Optional[np.ndarray]:
    if any(v is None for v in values):
        return None
    return np.asarray(values, dtype).reshape((len(values),) + shape_tail)


def _read_ground_truth(path: str) -> tuple:
    """:func:`read_ground_truth` and the file's ``noisy_lesions`` ("kept", "excluded" or None)."""
    from ..data.deeplesion import annotation_xyxy

    ann = _load_json(path, "annotation file")
    if isinstance(ann, dict) and ann.get("format") == PREDICTIONS_FORMAT:
        raise PredictionsError(f"{path} is a predictions file, not an annotation file (COCO-style "
                               "'images' and 'annotations' of the prepared DeepLesion): the two files "
                               "are swapped", field="ground_truth")
    if not isinstance(ann, dict) or not isinstance(ann.get("images"), list) \
            or not isinstance(ann.get("annotations"), list):
        raise PredictionsError(f"{path}: expected an annotation object with 'images' and "
                               "'annotations' lists (the prepared DeepLesion annotations)")
    if not ann["images"]:
        raise PredictionsError(f"{path}: holds no images")
    images: Dict[Any, dict] = {}
    names: Dict[str, int] = {}
    for i, img in enumerate(ann["images"]):
        where = f"{path}: images[{i}]"
        if not isinstance(img, dict) or "id" not in img or "file_name" not in img:
            raise PredictionsError(f"{where}: must be an object with 'id', 'file_name' and 'thickness'")
        if img["id"] in images or img["file_name"] in names:
            raise PredictionsError(f"{where}: image id {img['id']} / {img['file_name']} appears twice")
        names[img["file_name"]] = i
        where = f"{where} ({img['file_name']})"
        images[img["id"]] = dict(file_name=img["file_name"],
                                 thickness=_thickness(img.get("thickness"), where),
                                 patient=_patient(img.get("patient"), where),
                                 spacing=img.get("spacing"), gt=[], lesions=[])
    for j, a in enumerate(ann["annotations"]):
        where = f"{path}: annotations[{j}]"
        if not isinstance(a, dict) or a.get("image_id") not in images:
            raise PredictionsError(f"{where}: must be an object whose 'image_id' is one of the images")
        try:
            box = annotation_xyxy(a)
        except (KeyError, TypeError, ValueError):
            raise PredictionsError(f"{where}: needs 'bbox_xyxy' or 'bbox' with 4 numbers") from None
        img = images[a["image_id"]]
        img["gt"].append(box)
        img["lesions"].append(_ann_lesion(a, img, where))
    out = []
    for img in images.values():
        gt = np.asarray(img["gt"], np.float64).reshape(-1, 4)
        _check_boxes(gt, f"{path}: image {img['file_name']}", "boxes", allow_zero_size=False)
        les = img["lesions"]
        out.append(dict(file_name=img["file_name"], thickness=img["thickness"], gt=gt,
                        patient=img["patient"],
                        lesion_type=_column([x[0] for x in les], np.int64),
                        diameters_mm=_column([x[1] for x in les], np.float64, (2,)),
                        noisy=_column([x[2] for x in les], bool)))
    info = ann.get("info") if isinstance(ann.get("info"), dict) else {}
    noisy = info.get("noisy_lesions")
    return out, noisy if noisy in NOISY_LESIONS else None


def join_ground_truth(preds: Sequence[ImagePredictions], gt_path: str,
                      ground_truth: Optional[List[dict]] = None) -> tuple[List[ImagePredictions], int]:
    """Ground truth and thickness of each image from an annotation file, matched by file_name.

    Every image of the annotation file is evaluated; those without predictions count as images
    with no detections. Returns the records (with the file's patient and lesion fields) and how
    many images had no predictions. A predicted image that the annotation file lacks is an error.
    ``ground_truth``: the file as :func:`read_ground_truth` read it, when it was read already.
    """
    gts = read_ground_truth(gt_path) if ground_truth is None else ground_truth
    by_name: Dict[Any, ImagePredictions] = {}
    for i, p in enumerate(preds):
        if p.file_name is None:
            raise PredictionsError(f"predictions images[{i}] has no file_name; cannot match it to {gt_path}")
        by_name[p.file_name] = p
    out, without = [], 0
    for g in gts:
        p = by_name.pop(g["file_name"], None)
        without += p is None
        out.append(ImagePredictions(file_name=g["file_name"], thickness=g["thickness"],
                                    pred=p.pred if p is not None else np.zeros((0, 5)), gt=g["gt"],
                                    img_id=p.img_id if p is not None else None,
                                    patient=g.get("patient"), gt_lesion_type=g.get("lesion_type"),
                                    gt_diameters_mm=g.get("diameters_mm"), gt_noisy=g.get("noisy")))
    if by_name:
        raise PredictionsError(f"{len(by_name)} predicted images are not in {gt_path}, "
                               f"e.g. {next(iter(by_name))}; is it the annotation file of the same split?")
    return out, without
