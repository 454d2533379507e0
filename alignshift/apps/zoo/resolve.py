"""A zoo model by its name, for tools that run one: its config and its converted checkpoint.

``tools/infer_volume.py SCAN --model NAME`` resolves ``NAME`` here: the entry of the model index,
the config it names (:func:`~alignshift.apps.zoo.index.resolve_config`) and ``<dest>/<NAME>.pth``,
fetched and converted on first use exactly as ``tools/download.py download NAME`` does
(:func:`~alignshift.apps.zoo.download.download`), or converted from a file fetched by hand.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Optional

from ...errors import UsageError, UserError
from .download import DriveFolderDownloader, download, gdown_folder
from .index import ZooEntry, ZooIndexError, find_entry, load_index, resolve_config

__all__ = ["ZooModel", "ensure_checkpoint", "zoo_model"]


@dataclass(frozen=True)
class ZooModel:
    """A zoo entry with the path of its config (the checkpoint may not be there yet)."""

    entry: ZooEntry
    config: str
    checkpoint: str  # <dest>/<name>.pth

    @property
    def name(self) -> str:
        return self.entry.name


def zoo_model(name: str, dest: str = "checkpoints", index: Optional[str] = None) -> ZooModel:
    """The model called ``name`` in the index (default: the package's), its config and checkpoint path.

    Raises:
        UsageError: no such model (the message lists the known names).
        UserError: a malformed index, or a config that is not in the source tree.
    """
    try:
        entries = load_index(index)
    except ZooIndexError as e:
        raise UserError(str(e)) from e
    try:
        entry = find_entry(entries, name)
    except KeyError as e:
        raise UsageError(e.args[0]) from None
    return ZooModel(entry, resolve_config(entry), os.path.join(dest, f"{entry.name}.pth"))


def _short_reason(err: UserError) -> str:
    """What went wrong in a failed fetch, short: a network error by its kind, else the message's
    first clause."""
    cause = err.__cause__
    if isinstance(cause, OSError) or type(cause).__module__.startswith(("requests", "urllib3")):
        return f"{type(cause).__name__}: no connection to the download site"
    text = " ".join(str(err).split())
    first = text.split("; ")[0]
    return first if len(first) <= 200 else first[:197] + "..."


def ensure_checkpoint(model: ZooModel, from_file: Optional[str] = None, cache_dir: Optional[str] = None,
                      progress: bool = True, drive_downloader: DriveFolderDownloader = gdown_folder,
                      log: Callable[[str], None] = print) -> str:
    """``model.checkpoint``, fetched and converted first when it is not there (or from ``from_file``).

    Raises:
        UserError: the fetch failed (one line saying what to download, or to pass a file fetched by
            hand), or ``from_file`` is not the published snapshot of this model.
    """
    path = model.checkpoint
    if from_file is None and os.path.isfile(path):
        return path
    dest = os.path.dirname(path) or "."
    try:
        return download(model.entry, dest, from_file, cache_dir, progress=progress,
                        drive_downloader=drive_downloader, log=log)
    except UserError as err:
        if from_file is not None or os.path.isfile(path):
            raise
        where = "" if os.path.normpath(dest) == "checkpoints" else f" --dest {dest}"
        raise UserError(
            f"model {model.name} is not downloaded ({path} does not exist) and fetching it failed "
            f"({_short_reason(err)}): run 'python tools/download.py download {model.name}{where}' where "
            "the network allows, or fetch the published file by hand and pass --from FILE") from err
