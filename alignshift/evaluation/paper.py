"""The published DeepLesion figures, read from the one machine-readable copy in the package.

``paper_results.json`` holds Tables 1 and 2 of AlignShift (MICCAI 2020) and the one A3D figure we
have; it was transcribed from ``shared/data/paper_tables.md``. Every tool that shows a published
figure (model zoo, reproduce, test-time comparison) reads it through :func:`paper_results`.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any, Dict, Mapping, Optional, Sequence

__all__ = ["compare_with_paper", "paper_results", "paper_variant"]


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


def compare_with_paper(measured: Mapping[str, Mapping[str, Any]], variant: str,
                       fps: Optional[Sequence[float]] = None) -> str:
    """Paper vs measured per FP rate, as a text table (sensitivities in %).

    Args:
        measured: ``{subset: {"sens": [...], "avg": float}}`` with fractions in [0, 1], as
            :func:`alignshift.evaluation.froc_breakdown` returns (subsets 'all', 'thin', 'thick').
        variant: a key of ``paper_results()['variants']``, e.g. ``'alignshift_7slice'``.
        fps: the FP rates of ``measured['...']['sens']`` (default: the paper's six).
    """
    doc = paper_results()
    pub = paper_variant(variant)
    paper_fps = [float(f) for f in doc["fp_rates"]]
    fps = paper_fps if fps is None else [float(f) for f in fps]
    head = ["Subset", "", *[f"{f:g}" for f in paper_fps], "Avg."]
    rows = []
    for subset in ("all", "thin", "thick"):
        if subset not in measured or subset not in pub:
            continue
        got = dict(zip(fps, (100.0 * float(s) for s in measured[subset]["sens"])))
        ref = pub[subset]["sens"]
        mine = [got.get(f) for f in paper_fps]
        m_avg, p_avg = 100.0 * float(measured[subset]["avg"]), pub[subset].get("avg")

        def cell(v: Optional[float], signed: bool = False) -> str:
            return "-" if v is None else (f"{v:+.2f}" if signed else f"{v:.2f}")

        def diff(m: Optional[float], p: Optional[float]) -> Optional[float]:
            return None if m is None or p is None else m - p

        rows.append([subset.capitalize(), "paper", *map(cell, ref), cell(p_avg)])
        rows.append(["", "measured", *map(cell, mine), cell(m_avg)])
        rows.append(["", "diff", *(cell(diff(m, p), True) for m, p in zip(mine, ref)),
                     cell(diff(m_avg, p_avg), True)])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = [f"Paper ({pub.get('method', variant)}, {pub.get('slices', '?')} slices) vs measured, "
             "sensitivity % per FP rate"]
    lines += [" | ".join(c.rjust(w) for c, w in zip(r, widths)) for r in [head, *rows]]
    lines.insert(2, "-" * len(lines[1]))
    return "\n".join(lines)
