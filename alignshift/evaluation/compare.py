"""Paired comparison of two detectors on the same test split: is a difference in sensitivity real?

Both detectors are evaluated on the same images and lesions. Each bootstrap resample draws the
patients with replacement once and evaluates **both** detectors on that same resample, so the
differences ``A - B`` of a resample are paired. Reported for All / Thin / Thick and every group of
the requested breakdowns, at each FP rate and for Avg.:

- the difference on the split;
- its percentile interval over the resamples;
- a two-sided p-value of "no difference",
  ``2 * min(#(d <= 0) + 1, #(d >= 0) + 1) / (n + 1)`` capped at 1
  (:func:`alignshift.evaluation.paired_p_value`): identical detectors give 1, and the smallest
  value ``n`` resamples can give is ``2 / (n + 1)``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..data.deeplesion import THIN_MAX_MM
from ..errors import UserError
from ..fileio import atomic_write
from .bootstrap import paired_p_value, patient_resamples, percentile_interval
from .breakdown import (
    DEFAULT_INTERVAL_BINS_MM,
    DEFAULT_SIZE_BINS_MM,
    _aligned,
    _avg,
    _check_picked,
    _markdown,
    _num,
    froc_arrays,
    prepare,
)
from .evalset import EvalSet, load_evalset
from .froc import match_detections
from .protocol import FROCProtocol

__all__ = ["Difference", "Comparison", "compare", "compare_files", "save_comparison"]


@dataclass
class Difference:
    """A - B for one subset or group.

    Attributes:
        num_lesions: lesions of the group (0: nothing is compared).
        num_images: images of the subset (None for a group).
        a, b: (R,) sensitivities at the reported FP rates; a_avg, b_avg their Avg.
        diff: (R,) a - b; diff_avg: a_avg - b_avg.
        diff_ci: (R, 2) and diff_avg_ci (2,): percentile intervals (None without resamples).
        p: (R,) and p_avg: two-sided p-values (None without resamples).
    """

    num_lesions: int
    num_images: Optional[int]
    a: Optional[np.ndarray] = None
    b: Optional[np.ndarray] = None
    a_avg: Optional[float] = None
    b_avg: Optional[float] = None
    diff: Optional[np.ndarray] = None
    diff_avg: Optional[float] = None
    diff_ci: Optional[np.ndarray] = None
    diff_avg_ci: Optional[np.ndarray] = None
    p: Optional[np.ndarray] = None
    p_avg: Optional[float] = None

    def to_dict(self) -> dict:
        d: dict = dict(num_lesions=self.num_lesions)
        if self.num_images is not None:
            d["num_images"] = self.num_images
        if self.diff is None:
            return d | dict(diff=None, diff_avg=None)
        d |= dict(a=[_num(v) for v in self.a], b=[_num(v) for v in self.b], a_avg=_num(self.a_avg),
                  b_avg=_num(self.b_avg), diff=[_num(v) for v in self.diff],
                  diff_avg=_num(self.diff_avg))
        if self.diff_ci is not None:
            d |= dict(diff_ci=[[_num(x), _num(y)] for x, y in self.diff_ci],
                      diff_avg_ci=[_num(v) for v in self.diff_avg_ci],
                      p=[_prob(v) for v in self.p], p_avg=_prob(self.p_avg))
        return d


def _prob(v) -> Optional[float]:
    """A p-value for JSON: unrounded (small ones matter), null where undefined."""
    return None if v is None or not np.isfinite(v) else float(v)


def _signed(v: Optional[float]) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{100 * v:+.2f}"


def _pval(p: Optional[float]) -> str:
    return "-" if p is None or not np.isfinite(p) else (f"{p:.3f}" if p >= 0.001 else f"{p:.1e}")


@dataclass
class Comparison:
    """What :func:`compare` measured, with its text, markdown and JSON forms."""

    labels: Tuple[str, str]
    sources: Tuple[str, str]
    protocol: FROCProtocol
    num_images: int
    num_lesions: int
    num_patients: Optional[int]
    subsets: Dict[str, Difference]
    breakdowns: Dict[str, Dict[str, Difference]]
    titles: Dict[str, str]
    n_resamples: int
    seed: int
    level: float
    notes: List[str] = field(default_factory=list)

    def header(self) -> List[str]:
        a, b = self.labels
        lines = [f"DeepLesion FROC, paired comparison: {a} - {b} (sensitivity points, %)",
                 f"{a}: {self.sources[0]}", f"{b}: {self.sources[1]}", self.protocol.describe()]
        counts = f"{self.num_images} images, {self.num_lesions} lesions"
        if self.num_patients is not None:
            counts += f", {self.num_patients} patients"
        lines.append(counts)
        if self.n_resamples:
            lines.append(f"[low, high]: {100 * self.level:g} % percentile intervals of the "
                         f"difference over {self.n_resamples} paired resamples of the patients "
                         f"(seed {self.seed}); p: two-sided bootstrap p-value of no difference in "
                         f"{self.protocol.avg_label} (per FP rate in the JSON form)")
        return lines + self.notes

    def _tables(self):
        a, b = self.labels
        p = self.protocol
        head = [f"{a} {p.avg_label}", f"{b} {p.avg_label}"]
        head += [f"diff {f:g}" for f in p.fps] + [f"diff {p.avg_label}"]
        ci = bool(self.n_resamples)
        if ci:
            head.append(f"p ({p.avg_label})")

        def row(label: str, d: Difference) -> List[str]:
            if d.diff is None:
                return [label]
            cells = [f"{100 * d.a_avg:.2f}", f"{100 * d.b_avg:.2f}"]
            for i, v in enumerate(list(d.diff) + [d.diff_avg]):
                cell = _signed(v)
                if ci:
                    lo, hi = d.diff_ci[i] if i < len(d.diff) else d.diff_avg_ci
                    cell += f" [{_signed(lo)}, {_signed(hi)}]"
                cells.append(cell)
            if ci:
                cells.append(_pval(d.p_avg))
            return [label] + cells

        tables = [("All, Thin and Thick (each its own image set)", ["subset"] + head,
                   [row(f"{k.capitalize()} ({d.num_images} images, n = {d.num_lesions})", d)
                    for k, d in self.subsets.items()])]
        for g, groups in self.breakdowns.items():
            tables.append((f"By {self.titles[g]}, at the FP rates of all images",
                           [self.titles[g]] + head,
                           [row(f"{k} (n = {d.num_lesions})", d) for k, d in groups.items()]))
        return tables

    def format_text(self) -> str:
        out = self.header()
        for title, head, rows in self._tables():
            out += ["", title, _aligned(head, rows)]
        return "\n".join(out)

    def format_markdown(self) -> str:
        h = self.header()
        out = [f"**{h[0]}**", ""] + [f"- {ln}" for ln in h[1:]]
        for title, head, rows in self._tables():
            out += ["", f"**{title}**", "", _markdown(head, rows)]
        return "\n".join(out)

    def to_dict(self) -> dict:
        boot = None
        if self.n_resamples:
            boot = dict(unit="patient", resamples=self.n_resamples, seed=self.seed,
                        level=self.level, method="paired percentile", p_value="two-sided")
        return dict(labels=list(self.labels), sources=list(self.sources),
                    protocol=self.protocol.to_dict(), num_images=self.num_images,
                    num_lesions=self.num_lesions, num_patients=self.num_patients, bootstrap=boot,
                    subsets={k: d.to_dict() for k, d in self.subsets.items()},
                    breakdowns={g: dict(title=self.titles[g],
                                        groups={k: d.to_dict() for k, d in groups.items()})
                                for g, groups in self.breakdowns.items()},
                    notes=self.notes)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)


def _align(a: EvalSet, b: EvalSet) -> EvalSet:
    """``b``'s detections on ``a``'s images and ground truth (checked to be the same)."""
    if all(n is not None for n in a.file_names) and all(n is not None for n in b.file_names):
        pos = {n: i for i, n in enumerate(b.file_names)}
        for n in a.file_names:
            if n not in pos:
                raise UserError(f"image {n} of {a.source} is not in {b.source}: the two detectors "
                                "must be evaluated on the same images")
        if len(pos) != len(a.file_names):
            extra = next(n for n in b.file_names if n not in set(a.file_names))
            raise UserError(f"image {extra} of {b.source} is not in {a.source}: the two detectors "
                            "must be evaluated on the same images")
        order = [pos[n] for n in a.file_names]
    else:
        if a.num_images != b.num_images:
            raise UserError(f"{a.source} has {a.num_images} images and {b.source} "
                            f"{b.num_images}; without file names they must match one to one")
        order = list(range(a.num_images))
    for i, j in enumerate(order):
        if a.gt[i].shape != b.gt[j].shape or not np.allclose(a.gt[i], b.gt[j], atol=1e-3):
            raise UserError(f"{a.source} and {b.source} disagree on the ground truth of image "
                            f"{a.file_names[i] or i}: compare them with the same annotation file")
    return replace(a, pred=[b.pred[j] for j in order], source=b.source)


def compare(a: EvalSet, b: EvalSet, protocol: Optional[FROCProtocol] = None,
            breakdown: Union[str, Sequence[str], None] = None, n_resamples: int = 1000,
            seed: int = 0, level: float = 0.95, labels: Tuple[str, str] = ("A", "B"),
            size_bins: Sequence[float] = DEFAULT_SIZE_BINS_MM,
            interval_bins: Sequence[float] = DEFAULT_INTERVAL_BINS_MM) -> Comparison:
    """Paired difference ``A - B`` with bootstrap intervals and p-values (module docstring).

    Args:
        a, b: the two detectors' predictions on the same split (same images and ground truth;
            ``a``'s lesion fields and patients are used for both).
        protocol, breakdown, size_bins, interval_bins: as in :func:`alignshift.evaluation.evaluate`.
        n_resamples: paired patient resamples (0: the differences only).
        seed: seed of the resampling.
        level: coverage of the intervals.
        labels: names of the two detectors in the tables.

    Raises:
        UserError: different images or ground truth, a missing field, an unknown name or a
            picked group without lesions (one line each).
    """
    protocol = protocol or FROCProtocol()
    if n_resamples < 0:
        raise UserError(f"the number of bootstrap resamples must be >= 0, got {n_resamples}")
    if n_resamples and not 0 < level < 1:
        raise UserError(f"the interval level must be in (0, 1), got {level}")
    b = _align(a, b)
    data_a, m_a, groupings, chosen = prepare(a, protocol, breakdown, size_bins, interval_bins)
    data_b = replace(data_a, pred=b.for_noisy(protocol.noisy).pred)
    m_b = match_detections(data_b.pred, data_b.gt, protocol.iou_thr, protocol.inclusive,
                           protocol.criterion)
    ones = np.ones((1, data_a.num_images), np.int32)
    pa = froc_arrays(data_a, m_a, protocol, groupings, ones)
    pb = froc_arrays(data_b, m_b, protocol, groupings, ones)
    _check_picked(pa, chosen, data_a.source)
    ba = bb = None
    if n_resamples:
        w = patient_resamples(data_a.require("patient", "the paired patient bootstrap"),
                              n_resamples, seed)
        ba = froc_arrays(data_a, m_a, protocol, groupings, w)
        bb = froc_arrays(data_b, m_b, protocol, groupings, w)
    n_rep = len(protocol.fps)
    thin = data_a.thickness <= THIN_MAX_MM

    def difference(key, num_images=None) -> Difference:
        sa, num = pa[key]
        sb = pb[key][0]
        n = int(num[0])
        if n == 0:
            return Difference(0, num_images)
        avg_a, avg_b = float(_avg(sa, protocol)[0]), float(_avg(sb, protocol)[0])
        d = Difference(n, num_images, sa[0, :n_rep], sb[0, :n_rep], avg_a, avg_b,
                       sa[0, :n_rep] - sb[0, :n_rep], avg_a - avg_b)
        if ba is not None:
            da = ba[key][0] - bb[key][0]
            dav = _avg(ba[key][0], protocol) - _avg(bb[key][0], protocol)
            d.diff_ci = percentile_interval(da[:, :n_rep], level).T
            d.diff_avg_ci = percentile_interval(dav, level)
            d.p = paired_p_value(da[:, :n_rep])
            d.p_avg = float(paired_p_value(dav))
        return d

    subsets = {"all": difference(("subset", "all"), data_a.num_images),
               "thin": difference(("subset", "thin"), int(thin.sum())),
               "thick": difference(("subset", "thick"), int((~thin).sum()))}
    breakdowns = {g.name: {label: difference((g.name, label))
                           for label in (chosen[g.name] or list(g.labels))} for g in groupings}
    return Comparison(labels, (a.source, b.source), protocol, data_a.num_images,
                      data_a.num_lesions, data_a.num_patients, subsets, breakdowns,
                      {g.name: g.title for g in groupings}, n_resamples, seed, level)


def compare_files(a: str, b: str, gt: Optional[str] = None, *,
                  labels: Optional[Tuple[str, str]] = None, protocol: Optional[FROCProtocol] = None,
                  breakdown: Union[str, Sequence[str], None] = None, n_resamples: int = 1000,
                  seed: int = 0, level: float = 0.95,
                  size_bins: Sequence[float] = DEFAULT_SIZE_BINS_MM,
                  interval_bins: Sequence[float] = DEFAULT_INTERVAL_BINS_MM) -> Comparison:
    """:func:`compare` on two predictions files, the ground truth from ``gt`` when given.

    ``labels`` default to the files' names (without folder and extension).
    """
    ea, without_a = load_evalset(a, gt)
    eb, without_b = load_evalset(b, gt)
    if labels is None:
        labels = tuple(os.path.splitext(os.path.basename(p))[0] for p in (a, b))
        if labels[0] == labels[1]:
            labels = ("A", "B")
    res = compare(ea, eb, protocol, breakdown, n_resamples, seed, level, labels, size_bins,
                  interval_bins)
    for path, n in ((a, without_a), (b, without_b)):
        if n:
            res.notes.append(f"note: {n} images of {gt} have no predictions in {path} (counted "
                             "as images without detections)")
    return res


def save_comparison(comparison: Comparison, out_dir: str, stem: str = "froc_compare") -> List[str]:
    """Write ``STEM.txt``, ``STEM.md`` and ``STEM.json`` into ``out_dir``, each atomically; return
    their names. (For bar charts of both detectors, see
    :func:`alignshift.evaluation.plot_breakdown`.)"""
    os.makedirs(out_dir, exist_ok=True)
    names = []
    for ext, text in (("txt", comparison.format_text()), ("md", comparison.format_markdown()),
                      ("json", comparison.to_json())):
        with atomic_write(os.path.join(out_dir, f"{stem}.{ext}"), encoding="utf-8") as f:
            f.write(text + "\n")
        names.append(f"{stem}.{ext}")
    return names
