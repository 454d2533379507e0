"""``thickness_sweep.md``, ``thickness_sweep.png`` and ``cross_thickness.md`` from the runs' sweeps.

The statistics are those of :mod:`alignshift.apps.reproduce.sweep`; this module lays them out. Every
figure is in percentage points.
"""

from __future__ import annotations

import math
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .sweep import RESAMPLES, STATISTICS, sweep_difference, sweep_stats

__all__ = ["COMPARISONS", "TRAIN_SETS", "claim", "cross_document", "label", "percent", "plot_sweep",
           "render_cross", "render_sweep", "sweep_document"]

# (A, B): is A's statistic different from B's? AlignShift against the two it departs from.
COMPARISONS = tuple((f"alignshift_{n}slice", f"{other}_{n}slice")
                    for n in (3, 7) for other in ("tsm", "2.5d"))
TRAIN_SETS = {"mixed": "thin and thick series (the benchmark's training split)",
              "thin": "thin series only (<= 2 mm)", "thick": "thick series only (5 mm)"}
_NAMES = {"2.5d": "2.5D", "tsm": "TSM", "alignshift": "AlignShift", "a3d": "A3D"}
_STAT_WORDS = {"gap": "gap (Avg. at <= 2 mm minus Avg. at 5 mm)",
               "slope": "slope of Avg. against the interval (points per mm)",
               "level": "level (mean Avg. over the eight intervals)",
               "transfer": "transfer loss (Avg. at the training intervals minus Avg. at the other end)"}


_PERCENT_KEYS = frozenset({"estimate", "lesion_se", "lesion_ci", "seed_sd", "seed_se", "combined_ci",
                           "seed_curves"})


def percent(doc):
    """A copy of a sweep or cross document with every sensitivity figure in percentage points."""
    if isinstance(doc, dict):
        return {k: _scale(v) if k in _PERCENT_KEYS else percent(v) for k, v in doc.items()}
    if isinstance(doc, (list, tuple)):
        return [percent(v) for v in doc]
    return doc


def _scale(v):
    if isinstance(v, (list, tuple)):
        return [_scale(x) for x in v]
    if isinstance(v, float) and math.isnan(v):
        return None
    return 100 * v if isinstance(v, (int, float)) and not isinstance(v, bool) else v


def label(variant: str) -> str:
    method, slices = variant.rsplit("_", 1)
    return f"{_NAMES.get(method, method)} x{slices.replace('slice', '')}"


def _p(x: Optional[float], sign: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    v = round(100 * x, 2) + 0.0  # no "-0.00"
    return f"{v:+.2f}" if sign else f"{v:.2f}"


def _ci(ci: Optional[Sequence[float]], sign: bool = True) -> str:
    return "-" if ci is None else f"[{_p(ci[0], sign)}, {_p(ci[1], sign)}]"


def _interval(e: Mapping) -> Tuple[Optional[Sequence[float]], str]:
    """The combined interval when the seed level is known, else the lesion-sampling one."""
    if e.get("combined_ci") is not None:
        return e["combined_ci"], "lesions and seeds"
    return e["lesion_ci"], "lesion sampling only: one seed leaves the seed spread unknown"


def claim(title: str, e: Mapping, what: str) -> str:
    """One sentence: the estimate, its 95 % interval and whether the interval excludes zero."""
    ci, basis = _interval(e)
    excludes = ci is not None and (ci[0] > 0 or ci[1] < 0)
    return (f"{title}, {what}: {_p(e['estimate'], True)} points, 95 % interval {_ci(ci)} ({basis}); "
            f"the interval {'excludes' if excludes else 'includes'} zero.")


def sweep_document(runs: Mapping[str, Sequence[Mapping[str, np.ndarray]]]) -> dict:
    """Per variant :func:`~alignshift.apps.reproduce.sweep.sweep_stats`, and the paired comparisons of
    :data:`COMPARISONS` on every statistic (fractions; the JSON part of ``results.json``)."""
    variants = {v: sweep_stats(rs) for v, rs in runs.items() if rs}
    comparisons = {}
    for a, b in COMPARISONS:
        if runs.get(a) and runs.get(b):
            comparisons[f"{a} - {b}"] = {s: sweep_difference(runs[a], runs[b], s) for s in STATISTICS}
    return dict(variants=variants, comparisons=comparisons, resamples=RESAMPLES)


def _seed_note(doc: Mapping) -> str:
    seeds = sorted({s["seeds"] for s in doc["variants"].values()})
    if seeds == [1]:
        return ("One seed per variant: the intervals below cover lesion sampling only; the spread "
                "between training seeds (several points on this benchmark) is not in them.")
    return ""


def render_sweep(doc: Mapping, status: str) -> str:
    """``thickness_sweep.md``: the Avg. at every interval, the statistics with both levels of variance,
    the paired comparisons and one sentence per claim."""
    variants = doc["variants"]
    if not variants:
        return status + "\n\nNo run has a sweep yet.\n"
    first = next(iter(variants.values()))
    iv = first["intervals"]
    lines = ["# Thickness sweep: sensitivity against slice interval\n", status, "",
             f"Every test volume at each of {len(iv)} intervals (same anatomy, same key slice): "
             f"{first['num_volumes']} volumes, {first['num_lesions'][0]} lesions and "
             f"{first['num_images'][0]} images per interval, the same lesion ids at every interval. "
             "Avg. = mean sensitivity at 0.5, 1, 2 and 4 false positives per image, in %. "
             "Intervals are 95 %: over "
             f"{doc['resamples']} bootstrap resamples of the volumes (lesion sampling; the same resamples "
             "for every interval, seed and variant, so differences are paired) combined with the spread "
             "between training seeds (Student's t, Welch-Satterthwaite degrees of freedom).", ""]
    note = _seed_note(doc)
    if note:
        lines += [note, ""]
    lines += ["## Avg. at each interval (mean over seeds ± half the 95 % interval)", ""]
    head = ["variant", "seeds"] + [f"{x:g} mm" for x in iv]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for v, s in variants.items():
        cells = []
        for e in s["per_interval"]:
            ci, _ = _interval(e)
            half = None if ci is None else (ci[1] - ci[0]) / 2
            cells.append(f"{_p(e['estimate'])} ± {_p(half)}" if half is not None else _p(e["estimate"]))
        lines.append(f"| {label(v)} | {s['seeds']} | " + " | ".join(cells) + " |")
    se = [e["lesion_se"] for s in variants.values() for e in s["per_interval"]
          if e["lesion_se"] is not None and not math.isnan(e["lesion_se"])]
    if se:
        lines += ["", "Lesion-sampling standard error of one variant's Avg. at one interval: median "
                      f"{100 * float(np.median(se)):.2f} points "
                      f"(range {100 * min(se):.2f}-{100 * max(se):.2f})."]
    lines += ["", "## The curve's statistics, with both levels of variance", "",
              "| variant | statistic | estimate | seed SD | lesion-sampling 95 % | combined 95 % |",
              "|---|---|---|---|---|---|"]
    for v, s in variants.items():
        for name in STATISTICS:
            e = s["statistics"][name]
            lines.append(f"| {label(v)} | {name} | {_p(e['estimate'], True)} | {_p(e['seed_sd'][0])} | "
                         f"{_ci(e['lesion_ci'])} | {_ci(e['combined_ci'])} |")
    lines += ["", "gap: " + _STAT_WORDS["gap"] + "; slope: " + _STAT_WORDS["slope"] + "; level: "
              + _STAT_WORDS["level"] + ". A negative gap means thick series are the easier ones; a "
              "narrower gap is one nearer zero, so a negative difference of gaps narrows it only where "
              "both gaps are positive."]
    lines += _comparison_section(doc)
    return "\n".join(lines) + "\n"


def _comparison_section(doc: Mapping, stats: Sequence[str] = STATISTICS,
                        words: Optional[Mapping[str, str]] = None) -> List[str]:
    words = dict(_STAT_WORDS, **(words or {}))
    comps = doc["comparisons"]
    if not comps:
        return ["", "No pair of compared variants has finished yet (AlignShift against TSM and 2.5D, "
                    "same number of slices)."]
    lines = ["", "## Paired differences (A - B, same volumes and resamples)", "",
             "| A - B | statistic | difference | lesion-sampling 95 % | seed SE | combined 95 % |",
             "|---|---|---|---|---|---|"]
    for key, by_stat in comps.items():
        a, b = key.split(" - ")
        for name in stats:
            e = by_stat[name]
            lines.append(f"| {label(a)} - {label(b)} | {name} | {_p(e['estimate'], True)} | "
                         f"{_ci(e['lesion_ci'])} | {_p(e['seed_se'])} | {_ci(e['combined_ci'])} |")
    lines += ["", "## Claims", ""]
    for key, by_stat in comps.items():
        a, b = key.split(" - ")
        for name in stats:
            lines.append("- " + claim(f"{label(a)} minus {label(b)}", by_stat[name], words[name]))
    return lines


def cross_document(runs_by_set: Mapping[str, Mapping[str, Sequence[Mapping[str, np.ndarray]]]]) -> dict:
    """Per training set (``thin``, ``thick``): each variant's sweep and the comparisons of its
    transfer loss (the gap for thin-trained models, minus the gap for thick-trained ones)."""
    out = {}
    for train_set, runs in runs_by_set.items():
        sign = 1.0 if train_set == "thin" else -1.0
        variants = {v: sweep_stats(rs) for v, rs in runs.items() if rs}
        for s in variants.values():
            g = s["statistics"]["gap"]
            s["statistics"]["transfer"] = _signed(g, sign)
        comparisons = {}
        for a, b in COMPARISONS:
            if runs.get(a) and runs.get(b):
                comparisons[f"{a} - {b}"] = {"transfer": sweep_difference(runs[a], runs[b], "gap", sign)}
        out[train_set] = dict(variants=variants, comparisons=comparisons, resamples=RESAMPLES)
    return out


def _signed(e: Mapping, sign: float) -> dict:
    out = dict(e)
    out["estimate"] = sign * e["estimate"]
    for k in ("lesion_ci", "combined_ci"):
        if e.get(k) is not None:
            out[k] = sorted(sign * x for x in e[k])
    return out


def render_cross(doc: Mapping, status: str) -> str:
    """``cross_thickness.md``: models trained on thin series only and on thick series only, tested on
    the sweep."""
    lines = ["# Cross-thickness generalisation\n", status, "",
             "Each variant trained on one kind of series, then tested on every interval of the sweep. "
             "A thickness-aware network should lose less away from its training interval. The "
             "transfer loss is the Avg. at the training intervals minus the Avg. at the other end "
             "(thin-trained: <= 2 mm minus 5 mm; thick-trained: 5 mm minus the mean of <= 2 mm); "
             "lower is better. Figures in %, intervals 95 % as in thickness_sweep.md.", ""]
    if not any(d["variants"] for d in doc.values()):
        return "\n".join(lines) + "\nNo cross-thickness run has finished yet.\n"
    for train_set, d in doc.items():
        if not d["variants"]:
            continue
        iv = next(iter(d["variants"].values()))["intervals"]
        lines += [f"## Trained on {TRAIN_SETS[train_set]}", ""]
        note = _seed_note(d)
        if note:
            lines += [note, ""]
        head = ["variant", "seeds"] + [f"{x:g} mm" for x in iv] + ["transfer loss", "combined 95 %"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for v, s in d["variants"].items():
            t = s["statistics"]["transfer"]
            ci, _ = _interval(t)
            avg = " | ".join(_p(e["estimate"]) for e in s["per_interval"])
            lines.append(f"| {label(v)} | {s['seeds']} | {avg} | {_p(t['estimate'], True)} | {_ci(ci)} |")
        lines += _comparison_section(d, ("transfer",))
        lines.append("")
    return "\n".join(lines) + "\n"


def plot_sweep(doc: Mapping, path: str, title: str = "") -> str:
    """Avg. against slice interval: per variant the mean over seeds (bold) with its lesion-sampling
    95 % band (paired volume bootstrap) and each seed's curve (thin), so both levels of variance show;
    one panel per number of slices. PNG via matplotlib (Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants: Dict[str, dict] = doc["variants"]
    groups: Dict[str, List[str]] = {}
    for v in variants:
        groups.setdefault(v.rsplit("_", 1)[-1], []).append(v)
    fig, axes = plt.subplots(1, max(1, len(groups)), figsize=(5.2 * max(1, len(groups)), 3.8), dpi=110,
                             squeeze=False)
    colours = {"2.5d": "tab:green", "tsm": "tab:orange", "alignshift": "tab:blue", "a3d": "tab:purple"}
    for ax, (slices, names) in zip(axes.flat, sorted(groups.items())):
        for v in names:
            s = variants[v]
            x = np.array(s["intervals"])
            y = 100 * np.array([e["estimate"] for e in s["per_interval"]])
            c = colours.get(v.rsplit("_", 1)[0], None)
            seeds = f"{s['seeds']} seed{'s' if s['seeds'] > 1 else ''}"
            ax.plot(x, y, "o-", color=c, lw=2, label=f"{label(v)} ({seeds})")
            lo = [100 * e["lesion_ci"][0] for e in s["per_interval"]]
            hi = [100 * e["lesion_ci"][1] for e in s["per_interval"]]
            ax.fill_between(x, lo, hi, color=c, alpha=0.18, lw=0)
            if s["seeds"] > 1:
                for curve in s.get("seed_curves", []):
                    ax.plot(x, 100 * np.array(curve), "-", color=c, lw=0.8, alpha=0.45)
        ax.axvline(2.0, color="0.6", lw=0.8, ls=":")
        ax.set_xlabel("slice interval (mm)")
        ax.set_ylabel("Avg. sensitivity, 0.5-4 FPs (%)")
        ax.set_title(f"{slices.replace('slice', '')} slices: mean (bold), lesion-sampling 95 % band, "
                     "each seed (thin)", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    from alignshift.fileio import atomic_path

    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return path
