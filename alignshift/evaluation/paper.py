"""The published DeepLesion figures, read from the one machine-readable copy in the package.

``paper_results.json`` holds Tables 1 and 2 of AlignShift (MICCAI 2020) and the one A3D figure we
have; it was transcribed from ``shared/data/paper_tables.md``. Every tool that shows a published
figure (model zoo, reproduce, test-time comparison) reads it through :func:`paper_results`.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any, Dict

__all__ = ["paper_results", "paper_variant"]


@lru_cache(maxsize=1)
def _load() -> str:
    return resources.files(__package__).joinpath("paper_results.json").read_text(encoding="utf-8")


def paper_results() -> Dict[str, Any]:
    """The whole document: ``fp_rates``, ``avg_fp_rates``, ``variants`` (keyed ``alignshift_7slice``
    etc., each with ``all``/``thin``/``thick`` -> ``sens`` (six rates, ``None`` where unpublished),
    ``avg`` and, for subsets, ``diff``) and ``others`` (Table 1's competing methods). A fresh copy."""
    return json.loads(_load())


def paper_variant(name: str) -> Dict[str, Any]:
    """One variant's published figures, e.g. ``paper_variant('alignshift_7slice')``."""
    variants = paper_results()["variants"]
    if name not in variants:
        raise KeyError(f"no published figures for {name!r}; known: {', '.join(variants)}")
    return variants[name]
