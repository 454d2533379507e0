"""Safe writing: write, then rename; check that an output can be written before long work.

- :func:`atomic_path` / :func:`atomic_write` give a temporary name beside the target and rename it
  into place only when the block finishes without an exception, so a killed run never leaves a file
  that looks complete.
- :func:`ensure_writable_file` and :func:`ensure_writable_dir` are the fail-fast checks run before
  loading a model or a dataset.

Which folders a tool may write into (the marker files) is orchestration:
:mod:`alignshift.apps.outputs`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import IO, Iterator

from .errors import UserError

__all__ = ["atomic_path", "atomic_write", "ensure_writable_dir", "ensure_writable_file"]


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
