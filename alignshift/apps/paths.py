"""Where the tools find the repository's configs and their default data and output folders."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UserError

__all__ = ["config_path", "source_root"]


def source_root() -> str:
    """The folder that holds ``alignshift/`` and, in a clone (or an editable install), ``configs/``."""
    return str(Path(__file__).resolve().parents[2])


def config_path(rel: str) -> str:
    """``rel`` (e.g. ``configs/demo/...py``) in the current folder if it is there, else in the source tree.

    Raises :class:`~alignshift.errors.UserError` naming both places when neither holds it (an
    install without the repository's ``configs/``).
    """
    if os.path.isfile(rel):
        return os.path.abspath(rel)
    path = os.path.join(source_root(), rel)
    if os.path.isfile(path):
        return path
    raise UserError(f"config {rel} is neither in the current folder nor in {source_root()}; "
                            "the configs ship with the source tree (a clone of the repository)")
