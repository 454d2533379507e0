#!/usr/bin/env python
"""Write a synthetic dataset in the exact DeepLesion release format (DL_info.csv + Images_png).

    python tools/make_synthetic_deeplesion.py --out data/synthetic_deeplesion \
        --num-images 200 --image-size 128 --seed 0
"""

from __future__ import annotations

import argparse
import os
import sys

from alignshift.data import make_synthetic_deeplesion


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="output folder (replaced when complete)")
    ap.add_argument("--num-images", type=int, default=200)
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--force", action="store_true", help="rewrite even if OUT/DL_info.csv exists")
    args = ap.parse_args(argv)
    csv_path = os.path.join(args.out, "DL_info.csv")
    if os.path.exists(csv_path) and not args.force:
        print(f"{csv_path} exists: reusing it (--force rewrites)")
        return 0
    try:
        path = make_synthetic_deeplesion(args.out, args.num_images, args.image_size, args.seed)
    except ValueError as e:
        ap.error(str(e))
    print(f"wrote {path} and {os.path.join(args.out, 'Images_png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
