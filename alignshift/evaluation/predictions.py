"""The predictions file: the one definition of its format, its writer and its checked reader.

``tools/test.py --out`` writes it (through ``mmdet_plugins.metrics``), ``tools/eval_froc.py``
reads it. Format ``alignshift-predictions/1``, JSON::

    {"format": "alignshift-predictions/1",
     "images": [{"img_id": 7, "file_name": "000001_01_01/109.png", "thickness": 5.0,
                 "gt_boxes": [[x1, y1, x2, y2], ...],              # original pixels, 0-based
                 "pred_boxes": [[x1, y1, x2, y2, score], ...]}]}

``img_id`` and ``gt_boxes`` are optional (without ``gt_boxes`` the ground truth comes from an
annotation file of ``tools/prepare_deeplesion.py``, see :func:`join_ground_truth`). What the reader
rejects, each naming the file, the image and the box: an empty image list, a record that is not an
object, a thickness that is not a finite number > 0 mm, a box list of the wrong width, NaN or inf,
an inverted box (``x2 < x1`` or ``y2 < y1``), a ground-truth box without area (``x2 == x1``; a
predicted one may have it, since detectors clip boxes to the image), and an image named twice.
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
           "read_predictions", "parse_predictions", "read_ground_truth", "join_ground_truth"]

PREDICTIONS_FORMAT = "alignshift-predictions/1"


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


def write_predictions(images: Sequence[dict], path: str) -> str:
    """Write the records ``images`` (dicts of the format above) to ``path`` atomically; return it."""
    with atomic_write(path) as f:
        json.dump({"format": PREDICTIONS_FORMAT, "images": list(images)}, f)
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
        out.append(ImagePredictions(
            file_name=name, thickness=_thickness(rec.get("thickness"), where),
            pred=_boxes(rec, "pred_boxes", 5, where, allow_zero_size=True),
            gt=_boxes(rec, "gt_boxes", 4, where, allow_zero_size=False) if "gt_boxes" in rec else None,
            img_id=rec.get("img_id")))
    return out


def read_predictions(path: str) -> List[ImagePredictions]:
    """Read and check a predictions file (:class:`PredictionsError` names what is wrong)."""
    return parse_predictions(_load_json(path, "predictions file"), path)


def read_ground_truth(path: str) -> List[dict]:
    """Read and check an annotation file of ``tools/prepare_deeplesion.py``.

    Returns one dict per image: ``file_name``, ``thickness`` and ``gt`` (M, 4) x1, y1, x2, y2.
    """
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
        images[img["id"]] = dict(file_name=img["file_name"],
                                 thickness=_thickness(img.get("thickness"), f"{where} ({img['file_name']})"),
                                 gt=[])
    for j, a in enumerate(ann["annotations"]):
        where = f"{path}: annotations[{j}]"
        if not isinstance(a, dict) or a.get("image_id") not in images:
            raise PredictionsError(f"{where}: must be an object whose 'image_id' is one of the images")
        try:
            box = annotation_xyxy(a)
        except (KeyError, TypeError, ValueError):
            raise PredictionsError(f"{where}: needs 'bbox_xyxy' or 'bbox' with 4 numbers") from None
        images[a["image_id"]]["gt"].append(box)
    out = []
    for img in images.values():
        gt = np.asarray(img["gt"], np.float64).reshape(-1, 4)
        _check_boxes(gt, f"{path}: image {img['file_name']}", "boxes", allow_zero_size=False)
        out.append(dict(file_name=img["file_name"], thickness=img["thickness"], gt=gt))
    return out


def join_ground_truth(preds: Sequence[ImagePredictions], gt_path: str
                      ) -> tuple[List[ImagePredictions], int]:
    """Ground truth and thickness of each image from an annotation file, matched by file_name.

    Every image of the annotation file is evaluated; those without predictions count as images
    with no detections. Returns the records and how many images had no predictions. A predicted
    image that the annotation file lacks is an error.
    """
    gts = read_ground_truth(gt_path)
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
                                    img_id=p.img_id if p is not None else None))
    if by_name:
        raise PredictionsError(f"{len(by_name)} predicted images are not in {gt_path}, "
                               f"e.g. {next(iter(by_name))}; is it the annotation file of the same split?")
    return out, without
