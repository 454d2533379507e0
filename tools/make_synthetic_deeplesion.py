#!/usr/bin/env python
"""Write a synthetic dataset in the exact DeepLesion release format (DL_info.csv + Images_png).

    python tools/make_synthetic_deeplesion.py --out data/synthetic_deeplesion \\
        --num-images 200 --image-size 128 --seed 0

OUT must be a new or empty folder, or an earlier output of this tool (which it then reuses).
The tool leaves a marker file (.alignshift-output.json) listing what it wrote; --force replaces
exactly those entries and nothing else. A relative OUT is relative to the current folder.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from any folder

from alignshift.cli import ArgumentParser, UsageError, run_cli  # noqa: E402
from alignshift.data.synthetic import SYNTHETIC_TOOL, make_synthetic_deeplesion  # noqa: E402
from alignshift.fsutil import check_output_dir, read_marker  # noqa: E402


def main(argv=None) -> int:
    ap = ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="output folder: new, empty, or an earlier output")
    ap.add_argument("--num-images", type=int, default=200)
    ap.add_argument("--image-size", type=int, default=128, help=">= 64 pixels")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--force", action="store_true",
                    help="replace an earlier output of this tool in OUT (only what it wrote)")
    ap.add_argument("--debug", action="store_true", help="show tracebacks of user errors")
    args = ap.parse_args(argv)
    if args.image_size < 64:
        raise UsageError(f"--image-size must be >= 64, got {args.image_size}")
    if args.num_images < 1:
        raise UsageError(f"--num-images must be >= 1, got {args.num_images}")
    out = os.path.abspath(args.out)
    check_output_dir(out, SYNTHETIC_TOOL)  # a foreign folder is refused before anything is written
    csv_path = os.path.join(out, "DL_info.csv")
    marker = read_marker(out) if os.path.isdir(out) else None
    if os.path.exists(csv_path) and marker and not args.force:
        print(f"{csv_path} exists (written by this tool): reusing it (--force rewrites it)")
        return 0
    path = make_synthetic_deeplesion(out, args.num_images, args.image_size, args.seed, force=args.force)
    print(f"wrote {path} and {os.path.join(out, 'Images_png')}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
