#!/usr/bin/env python
"""Write one COCO-style annotation JSON per split from DeepLesion's DL_info.csv.

    python tools/prepare_deeplesion.py --data-root data/DeepLesion [--out DIR]

Reads ``DATA_ROOT/DL_info.csv`` and checks each key slice exists under ``DATA_ROOT/Images_png``.
Writes ``OUT/deeplesion_{train,val,test}.json`` (default OUT: DATA_ROOT/annotations), each with
thickness, spacing, window, RECIST, diameters and lesion type. Noisy lesions are left out (as in
the published protocol) unless --include-noisy; everything left out is reported with its reason.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from tqdm import tqdm

from alignshift.data import SPLITS, parse_dl_info, records_to_coco, select_split


def write_json_atomic(obj: dict, path: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", required=True, help="folder with DL_info.csv and Images_png/")
    ap.add_argument("--out", default=None, help="output folder (default DATA_ROOT/annotations)")
    ap.add_argument("--include-noisy", action="store_true", help="keep Possibly_noisy lesions")
    args = ap.parse_args(argv)

    csv_path = os.path.join(args.data_root, "DL_info.csv")
    image_dir = os.path.join(args.data_root, "Images_png")
    for p in (csv_path, image_dir):
        if not os.path.exists(p):
            ap.error(f"{p} does not exist: --data-root must hold DL_info.csv and Images_png/")
    out = args.out or os.path.join(args.data_root, "annotations")
    os.makedirs(out, exist_ok=True)

    records = parse_dl_info(csv_path)
    for split in SPLITS:
        kept, skipped = select_split(records, split, include_noisy=args.include_noisy)
        present = []
        missing = []
        for rec in tqdm(kept, desc=f"{split}: checking key slices", unit="image"):
            (present if os.path.exists(os.path.join(image_dir, rec.file_name)) else missing).append(rec)
        if missing:
            skipped["images whose key slice PNG is missing"] = len(missing)
        path = os.path.join(out, f"deeplesion_{split}.json")
        write_json_atomic(records_to_coco(present, split), path)
        n_les = sum(len(r.lesions) for r in present)
        print(f"{split}: {len(present)} images, {n_les} lesions -> {path}")
        for reason, n in skipped.items():
            if n:
                print(f"  skipped {n} {reason}")
        for rec in missing[:5]:
            print(f"    e.g. {os.path.join(image_dir, rec.file_name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
