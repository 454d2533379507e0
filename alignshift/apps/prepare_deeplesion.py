"""Write one COCO-style annotation JSON per split from DeepLesion's DL_info.csv.

    python tools/prepare_deeplesion.py [--data-root data/DeepLesion] [--out DIR] [--force]

DATA_ROOT defaults to $DEEPLESION_ROOT, else data/DeepLesion (as the configs read it); relative
paths are relative to the current folder. Reads ``DATA_ROOT/DL_info.csv`` and checks each key
slice exists under ``DATA_ROOT/Images_png``. Writes ``OUT/deeplesion_{train,val,test}.json``
(default OUT: DATA_ROOT/annotations), each with thickness, spacing, window, RECIST, diameters and
lesion type. Noisy lesions are left out (as in the published protocol) unless --include-noisy.
Malformed CSV rows stop it, all of them reported on one line (up to 10 quoted); with
--skip-bad-rows they are left out and reported. Everything else left out is reported with its
reason: missing key slices, and the images whose neighbour slices are missing (the loader then
repeats the nearest slice). A split left empty is a warning; nothing usable at all is an error. OUT must
be new, empty or an earlier output of this tool; --force replaces that earlier output (only the
files it wrote).
"""

from __future__ import annotations

import json
import os
import sys

from tqdm import tqdm

from alignshift.apps.cli import ArgumentParser, run_cli
from alignshift.apps.outputs import check_output_dir, claim_output_dir, record_outputs
from alignshift.data import (
    SPLITS,
    missing_neighbours,
    parse_dl_info,
    records_to_coco,
    select_split,
)
from alignshift.errors import UserError
from alignshift.fileio import atomic_write

__all__ = ["TOOL", "cli", "main"]

TOOL = "prepare_deeplesion"
MAX_LISTED = 10  # malformed rows quoted in the one-line report; the rest are counted
DEFAULT_ROOT = "data/DeepLesion"


def main(argv=None) -> int:
    ap = ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=None,
                    help="folder with DL_info.csv and Images_png/ (default: $DEEPLESION_ROOT, "
                         f"else {DEFAULT_ROOT})")
    ap.add_argument("--out", default=None, help="output folder (default DATA_ROOT/annotations)")
    ap.add_argument("--include-noisy", action="store_true",
                    help="keep the lesions DL_info.csv marks Possibly_noisy, with their flag (the FROC "
                         "options --keep-noisy / noisy='kept' count them); default: left out, as "
                         "published")
    ap.add_argument("--num-slices", type=int, default=7,
                    help="input depth whose neighbour slices are checked (default 7, at 2 mm)")
    ap.add_argument("--skip-bad-rows", action="store_true",
                    help="leave malformed CSV rows out (each is reported) instead of stopping")
    ap.add_argument("--force", action="store_true",
                    help="replace an earlier output of this tool in OUT (only what it wrote)")
    ap.add_argument("--debug", action="store_true", help="show tracebacks of user errors")
    args = ap.parse_args(argv)

    root = args.data_root or os.environ.get("DEEPLESION_ROOT") or DEFAULT_ROOT
    source = "--data-root" if args.data_root else ("$DEEPLESION_ROOT" if os.environ.get(
        "DEEPLESION_ROOT") else "the default data root")
    root = os.path.abspath(root)
    csv_path = os.path.join(root, "DL_info.csv")
    image_dir = os.path.join(root, "Images_png")
    for p in (csv_path, image_dir):
        if not os.path.exists(p):
            raise UserError(
                f"{p} does not exist ({source} is {root}): the data root must hold DL_info.csv "
                "and Images_png/ (download DeepLesion with tools/download_deeplesion.py, or make a "
                "synthetic one with tools/make_synthetic_deeplesion.py)")
    out = os.path.abspath(args.out or os.path.join(root, "annotations"))
    names = [f"deeplesion_{split}.json" for split in SPLITS]
    earlier = check_output_dir(out, TOOL)  # fail fast, before reading anything
    if not args.force and any(os.path.exists(os.path.join(out, n)) for n in earlier):
        raise UserError(f"{out} already holds annotations written by this tool; pass --force to "
                        "replace them (or --out for another folder)")

    errors: list = []
    try:
        records = parse_dl_info(csv_path, errors=errors)
    except UnicodeDecodeError:
        raise UserError(f"{csv_path} is not a text CSV file") from None
    if errors:
        listed = "; ".join(str(e).replace(f"{csv_path}: ", "", 1) for e in errors[:MAX_LISTED])
        more = f"; and {len(errors) - MAX_LISTED} more" if len(errors) > MAX_LISTED else ""
        report = f"{csv_path}: {len(errors)} malformed rows: {listed}{more}"
        if not args.skip_bad_rows:
            raise UserError(report + " (fix them, or pass --skip-bad-rows to leave them out)")
        print(f"warning: left out {report}", file=sys.stderr)
    if not records:
        raise UserError(f"{csv_path}: no usable rows"
                        + (f" (all {len(errors)} rows are malformed)" if errors else " (header only)"))

    results, total = {}, 0
    for split in SPLITS:
        kept, skipped = select_split(records, split, include_noisy=args.include_noisy)
        present, missing, fallback = [], [], []
        for rec in tqdm(kept, desc=f"{split}: checking slices", unit="image", disable=None):
            if not os.path.exists(os.path.join(image_dir, rec.file_name)):
                missing.append(rec)
                continue
            present.append(rec)
            gone = missing_neighbours(image_dir, rec.file_name, rec.thickness, args.num_slices)
            if gone:
                fallback.append((rec, gone))
        if missing:
            skipped["images whose key slice PNG is missing"] = len(missing)
        results[split] = (present, skipped, missing, fallback)
        total += len(present)
    if total == 0:
        raise UserError(f"nothing usable in {root}: no split has an image whose key slice exists under "
                        f"{image_dir} (checked {len(records)} images)")

    claim_output_dir(out, TOOL, force=args.force)
    for split, name in zip(SPLITS, names):
        present, skipped, missing, fallback = results[split]
        path = os.path.join(out, name)
        with atomic_write(path) as f:
            json.dump(records_to_coco(present, split, include_noisy=args.include_noisy), f)
        record_outputs(out, TOOL, [name])
        n_les = sum(len(r.lesions) for r in present)
        print(f"{split}: {len(present)} images, {n_les} lesions -> {path}")
        if not present:
            print(f"warning: the {split} split has no images; training or testing on it will fail",
                  file=sys.stderr)
        for reason, n in skipped.items():
            if n:
                print(f"  skipped {n} {reason}")
        for rec in missing[:5]:
            print(f"    e.g. {os.path.join(image_dir, rec.file_name)}")
        if fallback:
            n_sl = sum(len(g) for _, g in fallback)
            rec, gone = fallback[0]
            print(f"  {len(fallback)} images lack {n_sl} neighbour slices of a {args.num_slices}-slice "
                  f"input (the loader repeats the nearest existing slice), e.g. {rec.file_name}: "
                  f"slices {gone}")
    print(f"wrote {', '.join(names)} to {out}")
    return 0


def cli() -> int:
    """The console script ``alignshift-prepare-deeplesion``."""
    return run_cli(main)


if __name__ == "__main__":
    sys.exit(cli())
