"""``python tools/download.py`` / ``alignshift-download``: list and fetch the published snapshots.

    python tools/download.py --list [--dest checkpoints/]
    python tools/download.py download NAME [--dest checkpoints/] [--from FILE] [--force]
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional, Sequence

from ...errors import UsageError, UserError
from ...evaluation.paper import paper_results
from ..cli import ArgumentParser, run_cli
from .download import DriveFolderDownloader, download, downloaded, gdown_folder
from .index import ZooEntry, ZooIndexError, find_entry, load_index

__all__ = ["cli", "format_zoo_table", "main"]


def format_zoo_table(entries: Sequence[ZooEntry], dest: str) -> str:
    """Name, slices, conv, the paper's Avg. [0.5-4 FPs] (from paper_results.json), source, downloaded."""
    variants = paper_results()["variants"]
    head = ["name", "slices", "conv", "paper Avg.", "source", "downloaded"]
    rows = []
    for e, have in zip(entries, downloaded(list(entries), dest)):
        avg = variants.get(e.paper_variant or "", {}).get("all", {}).get("avg")
        rows.append([e.name, str(e.slices), e.conv, "-" if avg is None else f"{100 * avg:.2f}", e.source,
                     os.path.join(dest, f"{e.name}.pth") if have else "no"])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [head, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="download.py",
        description="List and fetch the published AlignShift/TSM snapshots, converted for this project.")
    p.add_argument("--list", action="store_true", help="print the zoo as a table")
    p.add_argument("--index", default=None,
                   help="model index or metafile (default: the package's model-index.yml)")
    p.add_argument("--dest", default="checkpoints", help="where converted snapshots are written")
    p.add_argument("--debug", action="store_true", help="show tracebacks of user errors")
    sub = p.add_subparsers(dest="command")
    d = sub.add_parser("download", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       help="fetch, verify and convert one snapshot to DEST/NAME.pth")
    d.add_argument("name", help="a name from --list")
    d.add_argument("--dest", default=argparse.SUPPRESS, help="where converted snapshots are written "
                   "(default: checkpoints)")
    d.add_argument("--from", dest="from_file", metavar="FILE",
                   help="a published file you downloaded by hand (e.g. from the Baidu mirror)")
    d.add_argument("--cache-dir", help="where fetched files are kept (default: pooch's user cache)")
    d.add_argument("--force", action="store_true", help="fetch and convert again over DEST/NAME.pth")
    d.add_argument("--retries", type=int, default=2, help="retries of a failed URL download")
    d.add_argument("--no-progress", action="store_true", help="no progress bar")
    d.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return p


def main(argv: Optional[List[str]] = None, drive_downloader: DriveFolderDownloader = gdown_folder) -> int:
    """Run the CLI. ``drive_downloader`` replaces gdown (tests use a local stand-in)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.list and args.command is None:
        raise UsageError("give --list or 'download NAME' (see --help)")
    try:
        entries = load_index(args.index)
    except ZooIndexError as e:
        raise UserError(str(e)) from e
    if args.list:
        print(format_zoo_table(entries, args.dest))
    if args.command == "download":
        if args.retries < 0:
            raise UsageError(f"--retries must be >= 0, got {args.retries}")
        try:
            entry = find_entry(entries, args.name)
        except KeyError as e:
            raise UsageError(e.args[0]) from e
        download(entry, args.dest, args.from_file, args.cache_dir, args.force, args.retries,
                 progress=not args.no_progress, drive_downloader=drive_downloader)
    return 0


def cli() -> int:
    """The console script ``alignshift-download``."""
    return run_cli(main, prog="download.py")


if __name__ == "__main__":
    sys.exit(cli())
