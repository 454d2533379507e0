"""``tools/make_synthetic_deeplesion.py``: a synthetic dataset in the exact DeepLesion release format.

    python tools/make_synthetic_deeplesion.py --out data/synthetic_deeplesion \\
        --num-images 200 --image-size 128 --seed 0

OUT must be a new or empty folder, or an earlier output of this tool (which it then reuses).
The tool leaves a marker file (.alignshift-output.json) listing what it wrote; --force replaces
exactly those entries and nothing else. A relative OUT is relative to the current folder.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Optional, Sequence

from ..data.synthetic import PARTIAL_IMAGES, make_synthetic_deeplesion
from ..errors import UsageError, UserError
from .cli import ArgumentParser, run_cli
from .outputs import check_output_dir, claim_output_dir, read_marker, record_outputs

__all__ = ["TOOL", "cli", "main", "write_synthetic"]

TOOL = "make_synthetic_deeplesion"
_OUTPUTS = ("DL_info.csv", "Images_png")


def write_synthetic(out_dir: str, num_images: int = 200, image_size: int = 128, seed: int = 0,
                    force: bool = False, progress: bool = True) -> str:
    """The generator into a folder this tool may write: new, empty, or its own earlier output.

    An earlier output is replaced only with ``force``, and then only the entries its marker lists;
    files a user put beside or inside them stay (a listed folder holding one is refused before
    anything is removed). Returns the path of ``DL_info.csv``.
    """
    out_dir = os.path.abspath(out_dir)
    marker = read_marker(out_dir) if os.path.isdir(out_dir) else None
    ours = marker is not None and marker.get("tool") == TOOL
    if not force and ours and any(os.path.lexists(os.path.join(out_dir, n)) for n in _OUTPUTS):
        raise UserError(f"{out_dir} already holds a synthetic DeepLesion; pass --force to replace it")
    if ours:  # the leftover of a killed run: our own temporary folder
        p = os.path.join(out_dir, PARTIAL_IMAGES)
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p)
    claim_output_dir(out_dir, TOOL, force=force)
    images = os.path.join(out_dir, "Images_png")
    if os.path.lexists(images):  # what force could not remove: something of a user's is inside
        left = next((os.path.join(d, f) for d, _, fs in os.walk(images) for f in fs), images)
        raise UserError(f"{images} holds files this tool did not write (e.g. {left}); "
                        "move them away or choose another folder")
    record_outputs(out_dir, TOOL, [*_OUTPUTS, PARTIAL_IMAGES])  # before writing: a kill leaves it known
    csv_path = make_synthetic_deeplesion(out_dir, num_images, image_size, seed, progress=progress)
    # every file listed, so that --force later removes exactly these and keeps a user's additions
    written = [os.path.relpath(os.path.join(d, f), out_dir).replace(os.sep, "/")
               for d, _, fs in os.walk(images) for f in fs]
    record_outputs(out_dir, TOOL, written)
    return csv_path


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = ArgumentParser(description=__doc__.splitlines()[0].split(": ", 1)[-1])
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
    check_output_dir(out, TOOL)  # a foreign folder is refused before anything is written
    csv_path = os.path.join(out, "DL_info.csv")
    marker = read_marker(out) if os.path.isdir(out) else None
    if os.path.exists(csv_path) and marker and not args.force:
        print(f"{csv_path} exists (written by this tool): reusing it (--force rewrites it)")
        return 0
    path = write_synthetic(out, args.num_images, args.image_size, args.seed, force=args.force)
    print(f"wrote {path} and {os.path.join(out, 'Images_png')}")
    return 0


def cli() -> int:
    """The console script ``alignshift-make-synthetic``."""
    return run_cli(main)


if __name__ == "__main__":
    sys.exit(cli())
