"""Which folders a tool may write into, and what it may delete there: only what it wrote.

:func:`check_output_dir` (no side effects, for the fail-fast checks) and :func:`claim_output_dir`
decide whether a tool may write into a folder. It may when the folder is missing or empty, or when
it carries the marker file (:data:`MARKER`) that the same tool wrote there earlier. With
``force=True`` the entries that the marker lists (names or relative paths, see
:func:`record_outputs`) are removed first; anything a user put beside or inside them is kept, and a
listed folder holding something unlisted is refused before anything is removed. Any other folder is
refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from typing import List, Optional, Sequence

from ..errors import UserError
from ..fileio import atomic_write, ensure_writable_dir

__all__ = ["MARKER", "check_output_dir", "claim_output_dir", "read_marker", "record_outputs"]

MARKER = ".alignshift-output.json"


def read_marker(folder: str) -> Optional[dict]:
    """The marker a tool left in ``folder``, or ``None`` when there is none (or it is unreadable)."""
    try:
        with open(os.path.join(folder, MARKER), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _inside(name: object) -> Optional[str]:
    """``name`` as a relative path inside the folder (``a/b.png``), or None when it points out."""
    rel = os.path.normpath(str(name)).replace(os.sep, "/")
    if not rel or os.path.isabs(rel) or rel == "." or rel == MARKER or rel.split("/")[0] == "..":
        return None
    return rel


def record_outputs(folder: str, tool: str, entries: Sequence[str]) -> None:
    """Write (atomically) the marker saying that ``tool`` wrote ``entries`` inside ``folder``.

    Entries are names or relative paths (``Images_png/000001_01_01/109.png``); the marker keeps
    those of earlier calls. A folder entry is removed by ``force`` only once it is empty, so list
    the files inside it too when a user might put something of their own there.
    """
    old = read_marker(folder) or {}
    names = sorted({n for n in (_inside(e) for e in [*old.get("entries", []), *entries]) if n})
    with atomic_write(os.path.join(folder, MARKER)) as f:
        json.dump({"tool": tool, "entries": names, "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
                  f, indent=1)


def check_output_dir(folder: str, tool: str, allowed: Sequence[str] = ()) -> List[str]:
    """May ``tool`` write into ``folder``? The check of :func:`claim_output_dir`, changing nothing.

    Raises :class:`UserError` naming the folder when it may not; returns the entries the folder's
    marker lists (what an earlier run of ``tool`` wrote), ``[]`` for a missing or empty folder.
    """
    folder = ensure_writable_dir(folder)
    if not os.path.isdir(folder):
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
    return [n for n in (_inside(e) for e in marker.get("entries", [])) if n]


def claim_output_dir(folder: str, tool: str, force: bool = False,
                     allowed: Sequence[str] = ()) -> List[str]:
    """May ``tool`` write into ``folder``? Raise :class:`UserError` naming the folder if not.

    Allowed: a missing or empty folder; a folder whose marker names ``tool``; a folder holding only
    names from ``allowed`` (files the tool reads, such as a user's ``DL_info.csv``). Returns the
    entries the marker lists (what an earlier run wrote). With ``force=True`` those entries are
    removed first, and nothing else is: listed files and links go, and a listed folder goes once
    it is empty; a listed folder that holds anything unlisted is refused before anything is
    removed. Creates the folder.
    """
    entries = check_output_dir(folder, tool, allowed)
    folder = os.path.abspath(folder)
    if not os.path.isdir(folder):
        os.makedirs(folder)
        return []
    if force and read_marker(folder) is not None:
        listed = set(entries)
        for name in entries:  # check everything first: refuse before removing anything
            p = os.path.join(folder, name)
            if not os.path.isdir(p) or os.path.islink(p):
                continue
            for d, subdirs, files in os.walk(p):
                for f in files + [s for s in subdirs if os.path.islink(os.path.join(d, s))]:
                    rel = os.path.relpath(os.path.join(d, f), folder).replace(os.sep, "/")
                    if rel not in listed:
                        raise UserError(f"{os.path.join(folder, name)} holds {rel}, which {tool} did not "
                                        "write; move it away before --force replaces the rest")
        dirs = set()
        for name in entries:
            p = os.path.join(folder, name)
            if os.path.isdir(p) and not os.path.islink(p):
                dirs.add(name)
            elif os.path.lexists(p):
                os.unlink(p)
            parent = os.path.dirname(name)
            while parent:
                dirs.add(parent)
                parent = os.path.dirname(parent)
        for name in sorted(dirs, key=lambda d: d.count("/"), reverse=True):  # deepest first
            with contextlib.suppress(OSError):  # not empty: it holds something of a user's
                os.rmdir(os.path.join(folder, name))
        os.unlink(os.path.join(folder, MARKER))
    return entries
