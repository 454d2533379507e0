#!/usr/bin/env python
"""Evaluate saved predictions with the DeepLesion FROC protocol.

    python tools/eval_froc.py PREDICTIONS.json [--gt ANNOTATIONS.json] [--out-dir DIR]

PREDICTIONS is what ``tools/test.py --out`` writes (format ``alignshift-predictions/1``):
``{"format": ..., "images": [{"file_name", "thickness", "gt_boxes": [[x1, y1, x2, y2]],
"pred_boxes": [[x1, y1, x2, y2, score]]}]}``. With --gt, ground truth and thickness come from an
annotation file of ``tools/prepare_deeplesion.py`` instead (matched by file_name); its images
without predictions count as images with no detections, and are reported.
"""

from __future__ import annotations

import argparse
import json
import os.path as osp
import sys
from typing import List

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from any folder

import numpy as np  # noqa: E402

from alignshift.data import annotation_xyxy  # noqa: E402
from alignshift.evaluation import format_froc_table, froc_breakdown, save_froc_report  # noqa: E402

FORMAT = "alignshift-predictions/1"


def _boxes(rec: dict, key: str, width: int, where: str) -> np.ndarray:
    try:
        arr = np.asarray(rec[key], np.float64).reshape(-1, width)
    except KeyError:
        raise SystemExit(f"{where}: missing field '{key}'") from None
    except ValueError:
        raise SystemExit(f"{where}: field '{key}' must be a list of [{width} numbers]") from None
    if not np.isfinite(arr).all():
        raise SystemExit(f"{where}: field '{key}' holds NaN or inf")
    return arr


def load_predictions(path: str) -> List[dict]:
    with open(path) as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise SystemExit(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SystemExit(f"{path}: expected a JSON object with \"format\": \"{FORMAT}\" "
                         "(written by tools/test.py --out)")
    images = data.get("images")
    if not isinstance(images, list):
        raise SystemExit(f"{path}: field 'images' must be a list")
    out = []
    for i, rec in enumerate(images):
        where = f"{path}: images[{i}]"
        if "thickness" not in rec or not float(rec["thickness"]) > 0:
            raise SystemExit(f"{where}: field 'thickness' must be a number > 0 (mm)")
        out.append(dict(file_name=rec.get("file_name"), thickness=float(rec["thickness"]),
                        pred=_boxes(rec, "pred_boxes", 5, where),
                        gt=_boxes(rec, "gt_boxes", 4, where) if "gt_boxes" in rec else None))
    return out


def apply_ground_truth(preds: List[dict], gt_path: str) -> List[dict]:
    with open(gt_path) as f:
        ann = json.load(f)
    by_name = {p["file_name"]: p for p in preds}
    if len(by_name) != len(preds):
        raise SystemExit("predictions name an image twice; cannot match them to --gt by file_name")
    boxes = {}
    for a in ann.get("annotations", []):
        boxes.setdefault(a["image_id"], []).append(annotation_xyxy(a))
    out, without = [], 0
    for img in ann["images"]:
        p = by_name.pop(img["file_name"], None)
        if p is None:
            without += 1
        out.append(dict(file_name=img["file_name"], thickness=float(img["thickness"]),
                        pred=p["pred"] if p else np.zeros((0, 5)),
                        gt=np.asarray(boxes.get(img["id"], []), np.float64).reshape(-1, 4)))
    if by_name:
        raise SystemExit(f"{len(by_name)} predicted images are not in {gt_path}, "
                         f"e.g. {next(iter(by_name))}")
    if without:
        print(f"note: {without} images of {gt_path} have no predictions (counted as no detections)")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("predictions")
    ap.add_argument("--gt", help="annotation JSON of tools/prepare_deeplesion.py")
    ap.add_argument("--iou-thr", type=float, default=0.5)
    ap.add_argument("--out-dir", help="write froc_table.txt, froc.png and froc.json here")
    args = ap.parse_args(argv)
    recs = load_predictions(args.predictions)
    if args.gt:
        recs = apply_ground_truth(recs, args.gt)
    elif any(r["gt"] is None for r in recs):
        raise SystemExit(f"{args.predictions}: some images have no 'gt_boxes'; pass --gt")
    res = froc_breakdown([r["pred"] for r in recs], [r["gt"] for r in recs],
                         [r["thickness"] for r in recs], iou_thr=args.iou_thr)
    title = f"DeepLesion FROC (sensitivity %) - {args.predictions}"
    print(save_froc_report(res, args.out_dir, title) if args.out_dir else format_froc_table(res, title=title))
    return 0


if __name__ == "__main__":
    sys.exit(main())
