"""The published DeepLesion figures, read from the one machine-readable copy in the package.

``paper_results.json`` holds Tables 1 and 2 of AlignShift (MICCAI 2020) and the one A3D figure we
have; it was transcribed, in the papers' percent, from ``shared/data/paper_tables.md``. Every tool
that shows a published figure (model zoo, reproduce, test-time comparison) reads it through
:func:`paper_results`, which gives fractions in [0, 1] like every sensitivity in the code. The
sensitivities are at :data:`~alignshift.evaluation.froc.DEFAULT_FPS`, and Avg. is their mean over
:data:`~alignshift.evaluation.froc.AVG_FPS`.
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


def _fractions(entry: Dict[str, Any]) -> None:
    for key in ("sens", "avg", "diff"):
        v = entry.get(key)
        if isinstance(v, list):
            entry[key] = [None if x is None else x / 100.0 for x in v]
        elif v is not None:
            entry[key] = v / 100.0


def paper_results() -> Dict[str, Any]:
    """The whole document, sensitivities as fractions: ``variants`` (keyed ``alignshift_7slice``
    etc., each with ``all``/``thin``/``thick`` -> ``sens`` (at the six DEFAULT_FPS rates, ``None``
    where unpublished), ``avg`` and, for subsets, ``diff``) and ``others`` (Table 1's competing
    methods). A fresh copy."""
    doc = json.loads(_load())
    for v in doc["variants"].values():
        for subset in ("all", "thin", "thick"):
            if subset in v:
                _fractions(v[subset])
    for other in doc.get("others", []):
        _fractions(other)
    return doc


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
    from .froc import DEFAULT_FPS

    pub = paper_variant(variant)
    paper_fps = [float(f) for f in DEFAULT_FPS]
    fps = paper_fps if fps is None else [float(f) for f in fps]
    head = ["Subset", "", *[f"{f:g}" for f in paper_fps], "Avg."]
    rows = []
    for subset in ("all", "thin", "thick"):
        if subset not in measured or subset not in pub:
            continue
        pct = lambda v: None if v is None else 100.0 * float(v)  # noqa: E731  (shown in percent)
        got = dict(zip(fps, (pct(s) for s in measured[subset]["sens"])))
        ref = [pct(s) for s in pub[subset]["sens"]]
        mine = [got.get(f) for f in paper_fps]
        m_avg, p_avg = pct(measured[subset]["avg"]), pct(pub[subset].get("avg"))

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
