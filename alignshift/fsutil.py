"""Safe output for every tool: write, then rename; check before long work; delete only what we wrote.

- :func:`atomic_path` / :func:`atomic_write` give a temporary name beside the target and rename it
  into place only when the block finishes without an exception, so a killed run never leaves a file
  that looks complete.
- :func:`ensure_writable_file` and :func:`ensure_writable_dir` are the fail-fast checks a tool runs
  before loading a model or a dataset.
- :func:`claim_output_dir` decides whether a tool may write into a folder. It may when the folder is
  missing or empty, or when it carries the marker file (:data:`MARKER`) that the same tool wrote
  there earlier. With ``force=True`` the entries that the marker lists are removed first; anything a
  user put beside them is kept. Any other folder is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from typing import IO, Iterator, List, Optional, Sequence

from .cli import UserError

__all__ = [
    "MARKER",
    "atomic_path",
    "atomic_write",
    "claim_output_dir",
    "ensure_writable_dir",
    "ensure_writable_file",
    "read_marker",
    "record_outputs",
]

MARKER = ".alignshift-output.json"


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = "") -> Iterator[str]:
    """Yield a temporary path beside ``path``; rename it to ``path`` when the block succeeds.

    ``suffix`` is appended to the temporary name (e.g. ``".png"`` for writers that pick the format
    from the extension). On an exception the temporary file or folder is removed.
    """
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=f".partial{suffix}", dir=parent)
    os.close(fd)
    os.unlink(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.isdir(tmp) and not os.path.islink(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        elif os.path.lexists(tmp):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "w", **open_kwargs) -> Iterator[IO]:
    """``open(path, mode)`` that only replaces ``path`` once the block has finished writing."""
    with atomic_path(path) as tmp, open(tmp, mode, **open_kwargs) as f:
        yield f


def _nearest_existing(path: str) -> str:
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def ensure_writable_dir(path: str, what: str = "output folder") -> str:
    """Check that ``path`` is, or can be created as, a writable folder; return it absolute.

    Nothing is created: a tool calls this before its long work and makes the folder when it writes.
    """
    path = os.path.abspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f"{what} {path} exists and is not a folder")
    base = _nearest_existing(path)
    if not os.path.isdir(base):
        raise UserError(f"{what} {path}: {base} is not a folder")
    # A real probe: os.access says yes to root even on read-only mounts and /proc.
    try:
        with tempfile.TemporaryFile(dir=base):
            pass
    except OSError as err:
        raise UserError(f"{what} {path} is not writable (cannot create a file in {base}: "
                        f"{err.strerror or err})") from None
    return path


def ensure_writable_file(path: str, what: str = "output file") -> str:
    """Check that the file ``path`` can be written (created or replaced); return it absolute."""
    path = os.path.abspath(path)
    if os.path.isdir(path):
        raise UserError(f"{what} {path} is a folder, expected a file path")
    ensure_writable_dir(os.path.dirname(path), what=f"folder of the {what}")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise UserError(f"{what} {path} exists and is not writable")
    return path


def read_marker(folder: str) -> Optional[dict]:
    """The marker a tool left in ``folder``, or ``None`` when there is none (or it is unreadable)."""
    try:
        with open(os.path.join(folder, MARKER), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def record_outputs(folder: str, tool: str, entries: Sequence[str]) -> None:
    """Write (atomically) the marker saying that ``tool`` wrote ``entries`` (names inside ``folder``)."""
    old = read_marker(folder) or {}
    names = sorted(set(old.get("entries", [])) | {os.path.basename(str(e)) for e in entries} - {MARKER})
    with atomic_write(os.path.join(folder, MARKER)) as f:
        json.dump({"tool": tool, "entries": names, "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
                  f, indent=1)


def claim_output_dir(folder: str, tool: str, force: bool = False,
                     allowed: Sequence[str] = ()) -> List[str]:
    """May ``tool`` write into ``folder``? Raise :class:`UserError` naming the folder if not.

    Allowed: a missing or empty folder; a folder whose marker names ``tool``; a folder holding only
    names from ``allowed`` (files the tool reads, such as a user's ``DL_info.csv``). Returns the
    entries the marker lists (what an earlier run wrote). With ``force=True`` those entries are
    removed first, and nothing else is. Creates the folder.
    """
    folder = ensure_writable_dir(folder)
    if not os.path.isdir(folder):
        os.makedirs(folder)
        return []
    marker = read_marker(folder)
    present = sorted(set(os.listdir(folder)) - {MARKER})
    if marker is None:
        foreign = [n for n in present if n not in allowed]
        if foreign:
            raise UserError(
                f"{folder} is not empty and was not written by {tool} "
                f"(it holds {', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''}); "
                "choose an empty or new folder")
        return []
    if marker.get("tool") != tool:
        raise UserError(f"{folder} holds the output of {marker.get('tool')!r}, not of {tool}; "
                        "choose an empty or new folder")
    entries = [str(e) for e in marker.get("entries", []) if os.path.basename(str(e)) == str(e)]
    if force:
        for name in entries:
            p = os.path.join(folder, name)
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p)
            elif os.path.lexists(p):
                os.unlink(p)
        os.unlink(os.path.join(folder, MARKER))
    return entries
