"""FROC by lesion type, size and slice interval, with patient-bootstrap confidence intervals.

Protocol of the breakdowns (the 3DCE / MULAN convention): a group's sensitivity at ``x`` FPs per
image is the fraction of the group's lesions hit at the score threshold at which **all** test
images together average ``x`` false positives. False positives belong to no group, so every group
is read at the same thresholds as All, and the lesion-weighted mean of a grouping's sensitivities
is All's. All, Thin and Thick keep the paper's protocol: each is an image set of its own.

Groupings (``breakdown`` names):

- ``type``: DeepLesion's coarse lesion type (``Coarse_lesion_type`` 1-8: bone, abdomen,
  mediastinum, liver, lung, kidney, soft tissue, pelvis; -1 "unlabelled", all of the train split);
- ``size``: long diameter in mm, bins ``[0, 10), [10, 20), [20, 30), [30, 50), [50, inf)`` by
  default (edges configurable);
- ``interval``: slice interval in mm, bins ``<= 1, (1, 2], (2, 3], > 3`` by default.

A name may pick one group (``"type:liver"``, ``"interval:>3"``): only that group is reported, and
an empty one is an error naming it. In a full grouping an empty group is reported as ``n = 0``,
never as a sensitivity.

Confidence intervals: percentile intervals over ``n_resamples`` patient resamples
(:mod:`alignshift.evaluation.bootstrap`; patients drawn with replacement, fixed ``seed``), for
every sensitivity and every Avg.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..data.deeplesion import THIN_MAX_MM
from ..errors import UserError
from ..fileio import atomic_write
from .bootstrap import patient_resamples, percentile_interval, weighted_sensitivity
from .evalset import EvalSet, load_evalset
from .froc import Matches, match_detections
from .protocol import FROCProtocol

__all__ = ["LESION_TYPES", "UNLABELLED", "GROUPINGS", "DEFAULT_SIZE_BINS_MM",
           "DEFAULT_INTERVAL_BINS_MM", "Grouping", "Estimate", "FROCReport", "make_groupings",
           "parse_breakdown", "evaluate", "evaluate_file", "plot_breakdown", "save_report",
           "froc_arrays"]

LESION_TYPES = {1: "bone", 2: "abdomen", 3: "mediastinum", 4: "liver", 5: "lung", 6: "kidney",
                7: "soft tissue", 8: "pelvis"}
UNLABELLED = "unlabelled"
GROUPINGS = ("type", "size", "interval")
DEFAULT_SIZE_BINS_MM = (10.0, 20.0, 30.0, 50.0)
DEFAULT_INTERVAL_BINS_MM = (1.0, 2.0, 3.0)
SUBSETS = ("all", "thin", "thick")


@dataclass(frozen=True)
class Grouping:
    """A partition of the lesions.

    Attributes:
        name: ``type``, ``size`` or ``interval``.
        title: for table headers.
        labels: the groups, in report order.
        attr: the :class:`EvalSet` attribute it groups by.
        edges: the bin edges (mm) of ``size`` / ``interval``.
    """

    name: str
    title: str
    labels: Tuple[str, ...]
    attr: str
    edges: Tuple[float, ...] = ()

    def assign(self, data: EvalSet) -> np.ndarray:
        """(L,) the group index of each lesion of ``data``."""
        purpose = f"the breakdown by {self.title}"
        if self.name == "type":
            codes = data.require("lesion_type", purpose)
            lut = {code: i for i, code in enumerate(LESION_TYPES)}
            return np.array([lut.get(int(c), len(LESION_TYPES)) for c in codes], np.int64)
        if self.name == "size":
            return np.searchsorted(np.array(self.edges), data.require("diameters_mm", purpose)[:, 0],
                                   side="right")
        # interval: bins closed on the right, as the thin/thick split (<= 2 mm is thin)
        return np.searchsorted(np.array(self.edges), data.thickness[data.gt_img], side="left")


def _edges(values: Sequence[float], what: str) -> Tuple[float, ...]:
    try:
        edges = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise UserError(f"{what} bin edges must be numbers in mm, got {values!r}") from None
    if not edges or not all(math.isfinite(e) and e > 0 for e in edges) or \
            any(b <= a for a, b in zip(edges, edges[1:])):
        raise UserError(f"{what} bin edges must be increasing numbers > 0 (mm), got {list(values)}")
    return edges


def make_groupings(names: Sequence[str] = GROUPINGS,
                   size_bins: Sequence[float] = DEFAULT_SIZE_BINS_MM,
                   interval_bins: Sequence[float] = DEFAULT_INTERVAL_BINS_MM) -> List[Grouping]:
    """The :class:`Grouping` of each name, with the given bin edges (mm)."""
    out = []
    for name in names:
        if name == "type":
            out.append(Grouping("type", "lesion type", tuple(LESION_TYPES.values()) + (UNLABELLED,),
                                "lesion_type"))
        elif name == "size":
            e = _edges(size_bins, "size")
            labels = ((f"<{e[0]:g}",) + tuple(f"{a:g}-{b:g}" for a, b in zip(e, e[1:]))
                      + (f">={e[-1]:g}",))
            out.append(Grouping("size", "long diameter (mm)", labels, "diameters_mm", e))
        elif name == "interval":
            e = _edges(interval_bins, "interval")
            labels = ((f"<={e[0]:g}",) + tuple(f"{a:g}-{b:g}" for a, b in zip(e, e[1:]))
                      + (f">{e[-1]:g}",))
            out.append(Grouping("interval", "slice interval (mm)", labels, "thickness", e))
        else:
            raise UserError(f"unknown breakdown {name!r}: expected one of {', '.join(GROUPINGS)}")
    return out


def parse_breakdown(spec: Union[str, Sequence[str], None]) -> List[Tuple[str, Optional[str]]]:
    """``"type,size:10-20"`` -> ``[("type", None), ("size", "10-20")]`` (names checked)."""
    if spec is None:
        return []
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out: List[Tuple[str, Optional[str]]] = []
    for item in items:
        item = item.strip()
        if not item:
            continue
        name, sep, group = item.partition(":")
        name = name.strip()
        if name not in GROUPINGS:
            raise UserError(f"unknown breakdown {name!r} in {item!r}: expected one of "
                            f"{', '.join(GROUPINGS)}, optionally with ':GROUP'")
        out.append((name, group.strip() if sep else None))
    return out


@dataclass
class Estimate:
    """Sensitivities of one subset or group, with their intervals.

    Attributes:
        num_lesions: lesions of the group (0: nothing is estimated).
        num_images: images of the subset (None for a group, which uses all images).
        sens: (R,) sensitivity at each reported FP rate; None when ``num_lesions == 0``.
        avg: the mean over the protocol's Avg. rates.
        sens_ci: (R, 2) low and high, or None without a bootstrap.
        avg_ci: (2,), or None.
        undefined: resamples in which the group had no lesion (left out of its interval).
    """

    num_lesions: int
    num_images: Optional[int]
    sens: Optional[np.ndarray]
    avg: Optional[float]
    sens_ci: Optional[np.ndarray] = None
    avg_ci: Optional[np.ndarray] = None
    undefined: int = 0

    def to_dict(self) -> dict:
        d: dict = dict(num_lesions=self.num_lesions)
        if self.num_images is not None:
            d["num_images"] = self.num_images
        d["sens"] = None if self.sens is None else [_num(v) for v in self.sens]
        d["avg"] = _num(self.avg)
        if self.sens_ci is not None:
            d["sens_ci"] = [[_num(a), _num(b)] for a, b in self.sens_ci]
            d["avg_ci"] = [_num(v) for v in self.avg_ci]
            d["undefined_resamples"] = self.undefined
        return d


def _num(v) -> Optional[float]:
    return None if v is None or not np.isfinite(v) else round(float(v), 6)


@dataclass
class FROCReport:
    """What :func:`evaluate` measured, with its text, markdown and JSON forms."""

    protocol: FROCProtocol
    source: str
    num_images: int
    num_lesions: int
    num_patients: Optional[int]
    subsets: Dict[str, Estimate]
    breakdowns: Dict[str, Dict[str, Estimate]]
    titles: Dict[str, str]
    n_resamples: int = 0
    seed: int = 0
    level: float = 0.95
    notes: List[str] = field(default_factory=list)

    def header(self) -> List[str]:
        lines = [f"DeepLesion FROC (sensitivity %) - {self.source}", self.protocol.describe()]
        counts = f"{self.num_images} images, {self.num_lesions} lesions"
        if self.num_patients is not None:
            counts += f", {self.num_patients} patients"
        lines.append(counts)
        if self.n_resamples:
            lines.append(f"[low, high]: {100 * self.level:g} % percentile intervals over "
                         f"{self.n_resamples} resamples of the patients (with replacement, "
                         f"seed {self.seed})")
        return lines + self.notes

    def _tables(self) -> List[Tuple[str, List[str], List[List[str]]]]:
        p = self.protocol
        ci = bool(self.n_resamples)
        head = [f"{f:g}" for f in p.fps] + [p.avg_label]
        tables = []
        rows = []
        for name, e in self.subsets.items():
            rows.append([f"{name.capitalize()} ({e.num_images} images, n = {e.num_lesions})"]
                        + _cells(e, ci))
        tables.append(("All, Thin and Thick (each its own image set)", ["subset"] + head, rows))
        for gname, groups in self.breakdowns.items():
            rows = [[f"{label} (n = {e.num_lesions})"] + _cells(e, ci) for label, e in groups.items()]
            tables.append((f"By {self.titles[gname]}, at the FP rates of all images",
                           [self.titles[gname]] + head, rows))
        return tables

    def format_text(self) -> str:
        """The console form: a header, then one aligned table per subset set or grouping."""
        out = self.header()
        for title, head, rows in self._tables():
            out += ["", title, _aligned(head, rows)]
        return "\n".join(out)

    def format_markdown(self) -> str:
        out = [f"**{self.header()[0]}**", ""] + [f"- {ln}" for ln in self.header()[1:]]
        for title, head, rows in self._tables():
            out += ["", f"**{title}**", "", _markdown(head, rows)]
        return "\n".join(out)

    def to_dict(self) -> dict:
        """JSON-ready; sensitivities as fractions (0-1), null where undefined."""
        boot = None
        if self.n_resamples:
            boot = dict(unit="patient", resamples=self.n_resamples, seed=self.seed,
                        level=self.level, method="percentile")
        return dict(source=self.source, protocol=self.protocol.to_dict(),
                    num_images=self.num_images, num_lesions=self.num_lesions,
                    num_patients=self.num_patients, bootstrap=boot,
                    subsets={k: e.to_dict() for k, e in self.subsets.items()},
                    breakdowns={g: dict(title=self.titles[g],
                                        groups={k: e.to_dict() for k, e in groups.items()})
                                for g, groups in self.breakdowns.items()},
                    notes=self.notes)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)


def _pct(v: Optional[float]) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{100 * v:.2f}"


def _cells(e: Estimate, ci: bool) -> List[str]:
    """Table cells of an estimate in %, "[low, high]" with an interval; none for n = 0 (the
    table pads them with "-")."""
    if e.sens is None:
        return []
    vals = list(e.sens) + [e.avg]
    lows = list(e.sens_ci) + [e.avg_ci] if ci and e.sens_ci is not None else [None] * len(vals)
    out = []
    for v, lo in zip(vals, lows):
        cell = _pct(v)
        if lo is not None and np.isfinite(v):
            cell += f" [{_pct(lo[0])}, {_pct(lo[1])}]"
        out.append(cell)
    return out


def _pad(rows: List[List[str]], width: int) -> List[List[str]]:
    return [r + ["-"] * (width - len(r)) for r in rows]


def _aligned(head: List[str], rows: List[List[str]]) -> str:
    rows = _pad(rows, len(head))
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    fmt = lambda r: " | ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                                for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([fmt(head), "-" * len(fmt(head))] + [fmt(r) for r in rows])


def _markdown(head: List[str], rows: List[List[str]]) -> str:
    rows = _pad(rows, len(head))
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def froc_arrays(data: EvalSet, m: Matches, protocol: FROCProtocol, groupings: Sequence[Grouping],
                weights: np.ndarray) -> Dict[Tuple[str, str], Tuple[np.ndarray, np.ndarray]]:
    """Sensitivities of the subsets and groups under ``weights``.

    Args:
        data: the split (after the protocol's noisy option).
        m: its matching.
        weights: (B, I) image weights (ones for the point estimate).

    Returns:
        ``{(kind, name): (sens (B, R), num_lesions (B,))}`` with kind ``"subset"`` (all, thin,
        thick) or a grouping's name, R = ``protocol.rates``.
    """
    rates = protocol.rates
    n_les = data.num_lesions
    thin = data.thickness <= THIN_MAX_MM
    out = {}
    all_sets = [np.ones(n_les, bool)]
    keys = [("subset", "all")]
    for g in groupings:
        idx = g.assign(data)
        for i, label in enumerate(g.labels):
            all_sets.append(idx == i)
            keys.append((g.name, label))
    sens, num = weighted_sensitivity(m, weights, np.array(all_sets), rates)
    for k, key in enumerate(keys):
        out[key] = (sens[:, k], num[:, k])
    for name, mask in (("thin", thin), ("thick", ~thin)):
        s, n = weighted_sensitivity(m, weights, np.ones((1, n_les), bool), rates, image_mask=mask)
        out[("subset", name)] = (s[:, 0], n[:, 0])
    return out


def _avg(sens: np.ndarray, protocol: FROCProtocol) -> np.ndarray:
    """(B, R) -> (B,) mean over the Avg. rates (NaN if any is)."""
    idx = [protocol.rates.index(f) for f in protocol.avg_fps]
    return sens[:, idx].mean(1)


def _selected(groupings: Sequence[Grouping], spec: Sequence[Tuple[str, Optional[str]]]
              ) -> Dict[str, Optional[List[str]]]:
    """grouping name -> the labels picked (None: all), labels checked."""
    chosen: Dict[str, Optional[List[str]]] = {}
    by_name = {g.name: g for g in groupings}
    for name, group in spec:
        if group is None:
            chosen[name] = None
            continue
        if group not in by_name[name].labels:
            raise UserError(f"unknown group {group!r} of breakdown {name}: expected one of "
                            f"{', '.join(by_name[name].labels)}")
        if name not in chosen or chosen[name] is not None:
            chosen.setdefault(name, [])
            chosen[name].append(group)  # type: ignore[union-attr]
    return chosen


def prepare(data: EvalSet, protocol: FROCProtocol, breakdown, size_bins, interval_bins):
    """The split under the protocol, its matching, the groupings and the picked groups."""
    spec = parse_breakdown(breakdown)
    names = list(dict.fromkeys(name for name, _ in spec))
    groupings = make_groupings(names, size_bins, interval_bins)
    chosen = _selected(groupings, spec)
    data = data.for_noisy(protocol.noisy)
    for g in groupings:  # a missing field fails here, before any work
        g.assign(data)
    m = match_detections(data.pred, data.gt, protocol.iou_thr, protocol.inclusive,
                         protocol.criterion)
    return data, m, groupings, chosen


def _check_picked(point, chosen, source: str) -> None:
    for name, labels in chosen.items():
        for label in labels or []:
            if point[(name, label)][1][0] == 0:
                raise UserError(f"{source}: group {name}:{label} has no lesions in this split")


def evaluate(data: EvalSet, protocol: Optional[FROCProtocol] = None,
             breakdown: Union[str, Sequence[str], None] = None, n_resamples: int = 0,
             seed: int = 0, level: float = 0.95,
             size_bins: Sequence[float] = DEFAULT_SIZE_BINS_MM,
             interval_bins: Sequence[float] = DEFAULT_INTERVAL_BINS_MM) -> FROCReport:
    """FROC of All / Thin / Thick and of the requested breakdowns, with patient-bootstrap CIs.

    Args:
        data: the split (:func:`alignshift.evaluation.load_evalset` or
            :meth:`alignshift.evaluation.EvalSet.from_records`).
        protocol: the protocol options, named in the report's header (default: as published).
        breakdown: ``"type,size,interval"``, a list of such names, or None; see the module
            docstring (``"type:liver"`` picks one group).
        n_resamples: patient resamples for the intervals (0: none; the tools use 1000). Needs
            every image's patient.
        seed: seed of the resampling.
        level: coverage of the intervals.
        size_bins, interval_bins: the bin edges in mm.

    Raises:
        UserError: a field the request needs is missing, a name is unknown, or a picked group
            has no lesions (each one line naming it).
    """
    protocol = protocol or FROCProtocol()
    if n_resamples < 0:
        raise UserError(f"the number of bootstrap resamples must be >= 0, got {n_resamples}")
    if n_resamples and not 0 < level < 1:
        raise UserError(f"the interval level must be in (0, 1), got {level}")
    data, m, groupings, chosen = prepare(data, protocol, breakdown, size_bins, interval_bins)
    patients = data.require("patient", "the patient bootstrap") if n_resamples else None
    point = froc_arrays(data, m, protocol, groupings, np.ones((1, data.num_images), np.int32))
    _check_picked(point, chosen, data.source)
    boot = None
    if n_resamples:
        boot = froc_arrays(data, m, protocol, groupings,
                           patient_resamples(patients, n_resamples, seed))
    n_rep = len(protocol.fps)
    thin = data.thickness <= THIN_MAX_MM

    def estimate(key, num_images=None) -> Estimate:
        sens, num = point[key]
        n = int(num[0])
        if n == 0:
            return Estimate(0, num_images, None, None)
        est = Estimate(n, num_images, sens[0, :n_rep], float(_avg(sens, protocol)[0]))
        if boot is not None:
            bs, bn = boot[key]
            est.sens_ci = percentile_interval(bs[:, :n_rep], level).T
            est.avg_ci = percentile_interval(_avg(bs, protocol), level)
            est.undefined = int((bn == 0).sum())
        return est

    subsets = {"all": estimate(("subset", "all"), data.num_images),
               "thin": estimate(("subset", "thin"), int(thin.sum())),
               "thick": estimate(("subset", "thick"), int((~thin).sum()))}
    breakdowns = {}
    for g in groupings:
        labels = chosen[g.name] or list(g.labels)
        breakdowns[g.name] = {label: estimate((g.name, label)) for label in labels}
    return FROCReport(protocol, data.source, data.num_images, data.num_lesions,
                      data.num_patients, subsets, breakdowns, {g.name: g.title for g in groupings},
                      n_resamples, seed, level)


def evaluate_file(predictions: str, gt: Optional[str] = None, *,
                  protocol: Optional[FROCProtocol] = None,
                  breakdown: Union[str, Sequence[str], None] = None, n_resamples: int = 0,
                  seed: int = 0, level: float = 0.95,
                  size_bins: Sequence[float] = DEFAULT_SIZE_BINS_MM,
                  interval_bins: Sequence[float] = DEFAULT_INTERVAL_BINS_MM) -> FROCReport:
    """:func:`evaluate` on a predictions file, its ground truth from ``gt`` when given.

    Images of ``gt`` without predictions count as images without detections; the report's notes
    say how many.
    """
    data, without = load_evalset(predictions, gt)
    report = evaluate(data, protocol, breakdown, n_resamples, seed, level, size_bins, interval_bins)
    if without:
        report.notes.append(f"note: {without} images of {gt} have no predictions (counted as "
                            "images without detections)")
    return report


def plot_breakdown(reports: Union[FROCReport, Mapping[str, FROCReport]], path: str,
                   fp: float = 4.0, title: Optional[str] = None) -> str:
    """A grouped bar chart PNG of the sensitivity at ``fp`` FPs per image of every group.

    One cluster of bars per group (panels per grouping), one bar per report (detector), with its
    bootstrap interval as an error bar; an empty group shows "n = 0" and no bar. Written
    atomically; returns ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if isinstance(reports, FROCReport):
        reports = {"": reports}
    first = next(iter(reports.values()))
    if fp not in first.protocol.fps:
        raise ValueError(f"{fp:g} FPs per image is not among the reported rates "
                         f"{list(first.protocol.fps)}")
    col = first.protocol.fps.index(fp)
    panels = [("subset", {k: e for k, e in first.subsets.items()}, "All / Thin / Thick")]
    panels += [(g, groups, first.titles[g]) for g, groups in first.breakdowns.items()]
    widths = [max(2, len(groups)) for _, groups, _ in panels]
    fig, axes = plt.subplots(1, len(panels), figsize=(1.2 + 0.75 * sum(widths), 4.2), dpi=120,
                             sharey=True, gridspec_kw=dict(width_ratios=widths), squeeze=False)
    n_rep = len(reports)
    bar_w = 0.8 / n_rep
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (gname, groups, gtitle) in zip(axes[0], panels):
        labels = list(groups)
        for r, (name, rep) in enumerate(reports.items()):
            ests = rep.subsets if gname == "subset" else rep.breakdowns.get(gname, {})
            for i, label in enumerate(labels):
                e = ests.get(label)
                x = i - 0.4 + bar_w * (r + 0.5)
                if e is None or e.sens is None:
                    ax.text(x, 0.02, "n = 0", rotation=90, ha="center", va="bottom", fontsize=7)
                    continue
                v = float(e.sens[col])
                err = None
                if e.sens_ci is not None and np.isfinite(e.sens_ci[col]).all():
                    lo, hi = e.sens_ci[col]
                    err = [[max(v - lo, 0)], [max(hi - v, 0)]]
                ax.bar(x, v, bar_w * 0.95, yerr=err, capsize=2, color=colors[r % len(colors)],
                       label=name if (i == 0 and name) else None)
        ax.set_xticks(range(len(labels)))
        names = [label.capitalize() if gname == "subset" else label for label in labels]
        ax.set_xticklabels([f"{lab}\n(n = {groups[label].num_lesions})"
                            for lab, label in zip(names, labels)], fontsize=7, rotation=45,
                           ha="right")
        ax.set_title(gtitle, fontsize=9)
        ax.set_ylim(0, 1.05)
        ax.grid(True, axis="y", alpha=0.3)
    axes[0][0].set_ylabel(f"sensitivity at {fp:g} FPs per image")
    if n_rep > 1 or next(iter(reports)):
        axes[0][-1].legend(loc="lower right", fontsize=8)
    ci = f", {100 * first.level:g} % CI over {first.n_resamples} patient resamples" \
        if first.n_resamples else ""
    fig.suptitle(title or f"Sensitivity at {fp:g} FPs per image{ci}", fontsize=10)
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def save_report(report: FROCReport, out_dir: str, stem: str = "froc_breakdown",
                fp: float = 4.0) -> List[str]:
    """Write ``STEM.txt``, ``STEM.md``, ``STEM.json`` and ``STEM.png`` (the bar chart at ``fp``)
    into ``out_dir``, each atomically; return their names."""
    os.makedirs(out_dir, exist_ok=True)
    names = []
    for ext, text in (("txt", report.format_text() + "\n"), ("md", report.format_markdown() + "\n"),
                      ("json", report.to_json() + "\n")):
        with atomic_write(os.path.join(out_dir, f"{stem}.{ext}"), encoding="utf-8") as f:
            f.write(text)
        names.append(f"{stem}.{ext}")
    if fp in report.protocol.fps:
        plot_breakdown(report, os.path.join(out_dir, f"{stem}.png"), fp)
        names.append(f"{stem}.png")
    return names
