"""Download DeepLesion's 56 image zips (238 GB): resumable, verified, unpacked for the tools.

    python tools/download_deeplesion.py --dest data/DeepLesion [--files 1-5,56] [--workers N]
        [--keep-zips] [--mirror BASE_URL] [--manifest FILE] [--check]

Writes DEST/Images_png/<series>/<slice>.png, the layout tools/prepare_deeplesion.py reads. A killed
or failed run is continued by running the same command again: partial zips resume from their last
byte (HTTP Range), finished zips are checked against the manifest's size, MD5 and SHA-256, and zips
already extracted are skipped. --check verifies what is there without fetching anything.
DL_info.csv is not downloadable by script: get it from https://nihcc.app.box.com/v/DeepLesion and
put it in DEST; it is checked when present.
"""

from __future__ import annotations

import argparse
import os.path as osp
import sys

from alignshift.apps import deeplesion_download as dl
from alignshift.apps.cli import ArgumentParser, run_cli
from alignshift.errors import UsageError, UserError

__all__ = ["build_parser", "cli", "main"]


def build_parser() -> argparse.ArgumentParser:
    ap = ArgumentParser(prog="download_deeplesion.py", description=__doc__.splitlines()[0])
    ap.add_argument("--dest", required=True, help="data root: Images_png/ goes here, beside DL_info.csv")
    ap.add_argument("--files", default="all",
                    help="which zips, by position in the manifest (NN of Images_png_NN.zip), e.g. 1-5,56")
    ap.add_argument("--workers", type=int, default=2, help="zips fetched at the same time")
    ap.add_argument("--keep-zips", action="store_true", help="keep each zip after extracting it")
    ap.add_argument("--mirror", default=None, metavar="BASE_URL",
                    help="fetch BASE_URL/<file name> instead of the manifest's URLs")
    ap.add_argument("--manifest", default=dl.DEFAULT_MANIFEST,
                    help="tab-separated list: file, url, bytes, md5, sha256")
    ap.add_argument("--check", action="store_true",
                    help="verify DEST without fetching: missing, partial and corrupt zips, incomplete "
                         "series folders, DL_info.csv")
    ap.add_argument("--retries", type=int, default=5, help="attempts after a network error, per file")
    ap.add_argument("--backoff", type=float, default=2.0,
                    help="seconds before the first retry; doubled for each next one")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds without data before a retry")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    ap.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    if args.retries < 0 or args.backoff < 0 or args.timeout <= 0:
        raise UsageError("--retries and --backoff must be >= 0 and --timeout > 0")
    entries = dl.read_manifest(args.manifest)
    picked = dl.parse_file_spec(args.files, len(entries))
    entries = [entries[i - 1] for i in picked]
    if args.mirror:
        entries = dl.with_mirror(entries, args.mirror)
    progress = not args.no_progress

    if args.check:
        if not osp.isdir(args.dest):
            raise UserError(f"--dest {args.dest} does not exist: nothing to check")
        statuses = dl.check(entries, args.dest, progress=progress)
        for s in statuses:
            print(f"{s.entry.file}  {s.state}" + (f": {s.detail}" if s.detail else ""))
        csv_state, csv_msg = dl.check_dl_info(args.dest)
        print(f"DL_info.csv  {csv_state}: {csv_msg}")
        bad = [s for s in statuses if not s.done]
        if bad or csv_state == "mismatch":
            what = [f"{len(bad)} of {len(statuses)} zips not extracted completely"] if bad else []
            what += ["DL_info.csv does not match NIH's release"] if csv_state == "mismatch" else []
            raise UserError(f"{args.dest}: {' and '.join(what)} (see above); run without --check to "
                            "fetch and extract what is missing")
        print(f"{args.dest}: all {len(statuses)} zips extracted and complete")
        return 0

    statuses = dl.download(entries, args.dest, workers=args.workers, keep_zips=args.keep_zips,
                           retries=args.retries, backoff=args.backoff, timeout=args.timeout,
                           progress=progress)
    print(f"{args.dest}: {sum(s.done for s in statuses)} of {len(statuses)} zips extracted into "
          f"{osp.join(args.dest, dl.IMAGE_DIR)}")
    csv_state, csv_msg = dl.check_dl_info(args.dest)
    print(f"DL_info.csv {csv_state}: {csv_msg}", file=sys.stderr if csv_state != "ok" else sys.stdout)
    return 0


def cli() -> int:
    """The console script ``alignshift-download-deeplesion``."""
    return run_cli(main)


if __name__ == "__main__":
    sys.exit(cli())
