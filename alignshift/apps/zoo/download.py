"""Fetch a zoo snapshot, verify it, convert it on arrival: ``<dest>/<name>.pth`` for tools/test.py.

URL entries go through pooch (sha256 check, retries, progress bar, write-then-rename), the Google
Drive folder through gdown. A file fetched by hand (Baidu mirror) comes in with ``from_file``.
"""

from __future__ import annotations

import glob
import hashlib
import os
from typing import Any, Callable, List, Optional

import torch

from ...errors import UserError, require
from ...fileio import atomic_path, ensure_writable_dir
from .convert import CheckpointLayoutError, convert_v1_checkpoint
from .index import ZooEntry

__all__ = ["DriveFolderDownloader", "default_cache_dir", "download", "fetch_drive_folder", "fetch_url",
           "gdown_folder", "load_checkpoint_file", "sha256sum"]

DriveFolderDownloader = Callable[[str, str, bool], Any]
"""``(folder_id, output_dir, quiet)``: put the folder's files under ``output_dir``; a false
result (gdown's on failure) means nothing usable was fetched."""

_CHECKPOINT_SUFFIXES = (".pth", ".pt", ".pkl", ".ckpt")


def sha256sum(path: str, chunk: int = 1 << 20) -> str:
    """The sha256 hex digest of the file ``path``."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def default_cache_dir() -> str:
    """Where fetched published files are kept before conversion (``pooch.os_cache('alignshift')``)."""
    require("pooch", "zoo", "downloading a zoo snapshot")
    import pooch

    return str(pooch.os_cache("alignshift"))


def fetch_url(url: str, fname: str, cache_dir: str, sha256: Optional[str] = None, retries: int = 2,
              progress: bool = True) -> str:
    """Download ``url`` to ``cache_dir/fname`` with pooch (reused when present and matching)."""
    require("pooch", "zoo", "downloading a zoo snapshot")
    import pooch
    import requests

    known = f"sha256:{sha256}" if sha256 else None
    store = pooch.create(path=cache_dir, base_url="", registry={fname: known}, urls={fname: url},
                         retry_if_failed=retries)
    try:
        return store.fetch(fname, progressbar=progress)
    except requests.exceptions.HTTPError as e:
        status = e.response.status_code if e.response is not None else "?"
        raise UserError(f"download of {url} failed: HTTP {status}") from e
    except requests.exceptions.RequestException as e:
        raise UserError(f"download of {url} failed: {type(e).__name__}: {e}") from e
    except ValueError as e:  # pooch's hash mismatch; it has removed the file
        raise UserError(f"{url}: the downloaded file's sha256 is not the pinned {sha256} "
                        f"(pooch: {' '.join(str(e).split())}); nothing was kept") from e


def gdown_folder(folder_id: str, output: str, quiet: bool) -> Any:
    """The default :data:`DriveFolderDownloader`: ``gdown.download_folder``."""
    require("gdown", "zoo", "downloading a snapshot from Google Drive")
    import gdown

    return gdown.download_folder(id=folder_id, output=output, quiet=quiet)


def fetch_drive_folder(folder_id: str, cache_dir: str, downloader: DriveFolderDownloader = gdown_folder,
                       quiet: bool = False) -> str:
    """The Drive folder's files under ``cache_dir/drive-<id>/``, downloaded once.

    The folder is fetched under a temporary name and renamed when complete, so an interrupted
    download is never taken for a finished one.
    """
    final = os.path.join(cache_dir, f"drive-{folder_id}")
    if os.path.isdir(final):
        return final
    with atomic_path(final) as part:  # removed again if the download fails
        os.makedirs(part)
        try:
            ok = downloader(folder_id, part, quiet)
        except Exception as e:
            why = f"{type(e).__name__}: {' '.join(str(e).split())}"
            raise UserError(f"could not download the Google Drive folder {folder_id} ({why}); fetch the "
                            "file by hand and pass --from FILE") from e
        if not ok:
            raise UserError(f"could not download the Google Drive folder {folder_id} (gdown gave up, often "
                            "a Drive quota); fetch the file by hand and pass --from FILE")
    return final


def _pick_from_folder(folder: str, entry: ZooEntry) -> str:
    files = sorted(p for p in glob.glob(os.path.join(folder, "**", "*"), recursive=True)
                   if p.lower().endswith(_CHECKPOINT_SUFFIXES) and os.path.isfile(p))
    word = {"alignshift": "align", "tsm": "tsm", "2.5d": "25d"}.get(entry.conv, entry.conv)

    def matches(p: str) -> bool:
        base = os.path.basename(p).lower().replace(".", "").replace("_", "").replace("-", "")
        return word in base and str(entry.slices) in base

    chosen = [p for p in files if matches(p)]
    if len(chosen) == 1:
        return chosen[0]
    names = ", ".join(os.path.relpath(p, folder) for p in files) or "no checkpoint files"
    raise UserError(f"the Drive folder ({folder}) holds {names}; none or several look like {entry.name} "
                    f"(a name with '{word}' and '{entry.slices}'): pass the right one with --from FILE")


def load_checkpoint_file(path: str) -> Any:
    """``torch.load`` with ``weights_only=True``: a snapshot is data, never code to run."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"{path}: cannot be read as a PyTorch checkpoint with weights_only=True "
                        f"({type(e).__name__}: {' '.join(str(e).split())[:300]})") from e


def download(entry: ZooEntry, dest: str = "checkpoints", from_file: Optional[str] = None,
             cache_dir: Optional[str] = None, force: bool = False, retries: int = 2, progress: bool = True,
             drive_downloader: DriveFolderDownloader = gdown_folder,
             log: Callable[[str], None] = print) -> str:
    """Fetch (or take ``from_file``), verify and convert ``entry``; return ``<dest>/<name>.pth``.

    An existing ``<dest>/<name>.pth`` is kept and nothing is fetched unless ``force`` or
    ``from_file`` is given. The sha256 of the fetched file is printed; when the entry pins one, a
    file that does not match is refused. Only the finished, converted file appears in ``dest``.

    Raises:
        UserError: a failed download, a hash mismatch, or a file that is not the published kind.
    """
    out = os.path.join(dest, f"{entry.name}.pth")
    if from_file is not None and not os.path.isfile(from_file):
        raise UserError(f"--from {from_file}: no such file")
    ensure_writable_dir(dest, "checkpoint folder")
    if os.path.isfile(out) and not force and from_file is None:
        log(f"{entry.name}: already downloaded: {out} (--force fetches it again)")
        return out
    if from_file is not None:
        raw = from_file
    else:
        cache_dir = cache_dir or default_cache_dir()
        ensure_writable_dir(cache_dir, "download cache")
        if entry.drive_folder_id:
            log(f"{entry.name}: fetching the Google Drive folder {entry.weights}")
            folder = fetch_drive_folder(entry.drive_folder_id, cache_dir, drive_downloader,
                                        quiet=not progress)
            raw = _pick_from_folder(folder, entry)
        else:
            log(f"{entry.name}: fetching {entry.weights}")
            suffix = os.path.splitext(entry.weights.split("?")[0])[1] or ".pth"
            raw = fetch_url(entry.weights, f"{entry.name}.published{suffix}", cache_dir, entry.sha256,
                            retries, progress)
    digest = sha256sum(raw)
    log(f"sha256 {digest}  {raw}")
    if entry.sha256 and digest != entry.sha256:
        raise UserError(f"{raw}: sha256 {digest} is not the {entry.sha256} pinned for {entry.name} in "
                        f"{entry.metafile}; not converted")
    if not entry.sha256:
        log(f"{entry.name}: no sha256 is pinned in {entry.metafile or 'the index'}; to pin this file add "
            f"'Weights SHA256: {digest}'")
    ckpt = load_checkpoint_file(raw)
    meta = ckpt.get("meta") if isinstance(ckpt, dict) else None
    if isinstance(meta, dict) and meta.get("converted_from"):
        if meta.get("variant") != entry.conv or meta.get("num_slices") != entry.slices:
            raise UserError(f"{raw} is a converted {meta.get('variant')} {meta.get('num_slices')}-slice "
                            f"checkpoint, not {entry.name} ({entry.conv}, {entry.slices} slices)")
        log(f"{raw} is already converted; copying it")
        converted = ckpt
    else:
        try:
            converted, report = convert_v1_checkpoint(ckpt, entry.conv, entry.slices)
        except CheckpointLayoutError as e:
            raise UserError(f"{raw}: {e}") from e
        for line in report.lines():
            log(line)
        converted["meta"]["source"]["sha256"] = digest
        converted["meta"]["source"]["file"] = os.path.basename(raw)
    with atomic_path(out, suffix=".pth") as tmp:
        torch.save(converted, tmp)
    log(f"{entry.name}: ready: {out}  (python tools/test.py {entry.config} {out})")
    return out


def downloaded(entries: List[ZooEntry], dest: str) -> List[bool]:
    """Whether ``<dest>/<name>.pth`` exists for each entry."""
    return [os.path.isfile(os.path.join(dest, f"{e.name}.pth")) for e in entries]
