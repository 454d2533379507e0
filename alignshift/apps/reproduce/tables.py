"""The paper's two tables from measured runs: aggregation over seeds, comparison, rendering, curves.

``tools/reproduce.py`` trains and tests; everything it then does with the numbers lives here, so
that the tables can be rebuilt, tested and reused without mmdet. Sensitivities are fractions in
[0, 1], as everywhere in the code; what reproduce writes to lie beside the paper (the tables, the
plots, ``results.json`` and each run's ``result.json``) is in the paper's percent, converted where
it is written and read (:func:`to_percent`, :func:`from_percent`). The tolerance is in percentage
points. They are taken at the protocol's FP rates
(:data:`alignshift.evaluation.DEFAULT_FPS`); ``Avg.`` is the mean over
:data:`~alignshift.evaluation.AVG_FPS` (0.5, 1, 2, 4); ``diff.`` is a subset's Avg. minus the All
Avg. of the same run; the thin-thick *gap* is Thin Avg. minus Thick Avg. of the same run.

A run summary (one variant, one seed), as :func:`run_summary` makes it::

    {"all": {"sens": [6 fractions], "avg": fraction, "num_images": n, "num_gt": m,
             "curve": {"fps": [...], "sens": [... fractions]}}, "thin": {...}, "thick": {...}}
"""

from __future__ import annotations

import math
from typing import Dict, Mapping, Optional, Sequence

import numpy as np

from ...data.deeplesion import THIN_MAX_MM
from ...evaluation.froc import AVG_FPS, DEFAULT_FPS, froc_breakdown
from ...evaluation.paper import paper_results

__all__ = ["CURVE_FPS", "DEFAULT_TOLERANCE", "SUBSETS", "aggregate_runs", "build_results",
           "compare_with_published", "from_percent", "plot_froc_panels", "render_gap_table", "render_table1",
           "render_table2", "run_summary", "subset_avg", "to_percent"]

SUBSETS = ("all", "thin", "thick")
DEFAULT_TOLERANCE = 2.0  # percentage points: the spread of the paper's own 3- vs 7-slice rows
CURVE_FPS = tuple(float(f) for f in np.geomspace(0.125, 16, 29))


# keys whose numbers are sensitivities (or their spread); inside them, these keys are not
_SENS_KEYS = frozenset({"sens", "sens_std", "avg", "diff", "gap"})
_NOT_SENS = frozenset({"n", "fps", "num_images", "num_gt", "seed", "beyond", "avg_beyond"})


def _scaled(x, factor: float, on: bool = False):
    if isinstance(x, dict):
        return {k: _scaled(v, factor, (on or k in _SENS_KEYS) and k not in _NOT_SENS) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_scaled(v, factor, on) for v in x]
    if on and isinstance(x, (int, float)) and not isinstance(x, bool):
        return x * factor
    return x


def to_percent(doc):
    """A copy of ``doc`` (run summaries, results) with every sensitivity in percent."""
    return _scaled(doc, 100.0)


def from_percent(doc):
    """The inverse of :func:`to_percent`: sensitivities back to fractions."""
    return _scaled(doc, 0.01)


def subset_avg(sens: Sequence[Optional[float]], fp_rates: Optional[Sequence[float]] = None,
               avg_rates: Optional[Sequence[float]] = None) -> Optional[float]:
    """The paper's Avg.: the mean sensitivity at ``avg_rates`` (default 0.5, 1, 2, 4 FPs).

    ``sens`` holds one value per rate of ``fp_rates`` (default :data:`DEFAULT_FPS`); ``None`` when
    a needed value is missing.
    """
    fp_rates = list(fp_rates or DEFAULT_FPS)
    avg_rates = list(avg_rates or AVG_FPS)
    vals = [sens[fp_rates.index(r)] for r in avg_rates]
    if any(v is None for v in vals):
        return None
    return float(np.mean(vals))


def run_summary(pred_boxes: Sequence[np.ndarray], gt_boxes: Sequence[np.ndarray],
                thickness: Sequence[float], iou_thr: float = 0.5) -> Dict[str, dict]:
    """One run's All/Thin/Thick figures, with its FROC curve sampled at :data:`CURVE_FPS`.

    Args:
        pred_boxes: per image, detections ``(N_i, 5)`` as x1, y1, x2, y2, score.
        gt_boxes: per image, lesions ``(M_i, 4)``.
        thickness: per image, the slice interval in mm (thin: <= 2 mm).
    """
    res = froc_breakdown(pred_boxes, gt_boxes, thickness, fps=DEFAULT_FPS, iou_thr=iou_thr)
    out = {}
    for name in SUBSETS:
        r = res[name]
        sens = [float(s) for s in r["sens"]]
        out[name] = dict(sens=sens, avg=subset_avg(sens), num_images=int(r["num_images"]),
                         num_gt=int(r["num_gt"]),
                         curve=dict(fps=list(CURVE_FPS),
                                    sens=[float(s) for s in r["curve"].at(CURVE_FPS)]))
    return out


def _mean_std(values: Sequence[float]) -> Dict[str, float]:
    a = np.asarray(values, np.float64)
    return dict(mean=float(a.mean()), std=float(a.std(ddof=1)) if len(a) > 1 else 0.0, n=int(len(a)))


def aggregate_runs(runs: Sequence[Mapping[str, dict]]) -> Dict[str, dict]:
    """Mean and spread over the seeds of one variant.

    Args:
        runs: run summaries (:func:`run_summary`), one per seed.

    Returns:
        ``{"all"|"thin"|"thick": {"sens": [mean per rate], "sens_std": [...], "avg": {mean, std, n},
        "diff": {mean, std, n} (subsets only), "curve": {"fps", "sens" (mean)}}, "gap": {mean,
        std, n}}``. Std is the sample standard deviation (ddof 1; 0 for one seed).
    """
    if not runs:
        raise ValueError("aggregate_runs needs at least one run")
    out: Dict[str, dict] = {}
    for name in SUBSETS:
        sens = np.array([r[name]["sens"] for r in runs], np.float64)  # (seeds, rates)
        entry = dict(sens=[float(v) for v in sens.mean(0)],
                     sens_std=[float(v) for v in (sens.std(0, ddof=1) if len(runs) > 1
                                                  else np.zeros(sens.shape[1]))],
                     avg=_mean_std([r[name]["avg"] for r in runs]),
                     num_images=int(runs[0][name]["num_images"]), num_gt=int(runs[0][name]["num_gt"]))
        if name != "all":
            entry["diff"] = _mean_std([r[name]["avg"] - r["all"]["avg"] for r in runs])
        curves = [r[name].get("curve") for r in runs if r[name].get("curve")]
        if curves:
            entry["curve"] = dict(fps=list(curves[0]["fps"]),
                                  sens=[float(v) for v in np.mean([c["sens"] for c in curves], 0)])
        out[name] = entry
    out["gap"] = _mean_std([r["thin"]["avg"] - r["thick"]["avg"] for r in runs])
    return out


def compare_with_published(measured: Mapping[str, dict], published: Mapping[str, dict],
                           tolerance: float = DEFAULT_TOLERANCE) -> Dict[str, dict]:
    """Cell by cell: measured minus published, and whether ``|difference|`` exceeds ``tolerance``
    percentage points.

    Args:
        measured: :func:`aggregate_runs` of one variant.
        published: ``paper_variant(name)`` (``None`` where the paper has no figure).

    Returns:
        ``{subset: {"sens": [diff or None], "avg": diff or None, "diff": diff or None,
        "beyond": [bool per rate], "avg_beyond": bool}}``.
    """
    out = {}
    for name in SUBSETS:
        if name not in published or name not in measured:
            continue
        p, m = published[name], measured[name]
        sd = [None if pv is None else mv - pv for mv, pv in zip(m["sens"], p["sens"])]
        ad = None if p.get("avg") is None else m["avg"]["mean"] - p["avg"]
        dd = None
        if name != "all" and p.get("diff") is not None:
            dd = m["diff"]["mean"] - p["diff"]
        out[name] = dict(sens=sd, avg=ad, diff=dd,
                         beyond=[d is not None and 100 * abs(d) > tolerance for d in sd],
                         avg_beyond=ad is not None and 100 * abs(ad) > tolerance)
    return out


def _f(v: Optional[float], sign: bool = False) -> str:
    """A fraction shown in percent."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{100 * v:+.2f}" if sign else f"{100 * v:.2f}"


def _pm(stat: Mapping[str, float], sign: bool = False) -> str:
    if stat["n"] > 1:
        return f"{_f(stat['mean'], sign)} ± {100 * stat['std']:.2f}"
    return _f(stat["mean"], sign)


def _mark(d: Optional[float], beyond: bool) -> str:
    return "-" if d is None else (f"**{_f(d, True)}!**" if beyond else _f(d, True))


def _variant_label(name: str, published: Mapping[str, dict]) -> tuple:
    p = published.get(name, {})
    method = p.get("method") or name.split("_")[0]
    slices = p.get("slices") or name.rsplit("_", 1)[-1].replace("slice", "")
    return method, slices


def render_table1(results: Mapping[str, dict], tolerance: float = DEFAULT_TOLERANCE,
                  title: str = "Table 1: comparison") -> str:
    """Markdown in the paper's Table 1 layout: per variant a published, a measured (mean ± std over
    seeds) and a difference row; differences beyond ``tolerance`` points are bold and marked ``!``.

    Args:
        results: ``{variant: {"measured": aggregate_runs(...), "published": paper_variant(...),
            "difference": compare_with_published(...)}}``.
    """
    fps = DEFAULT_FPS
    head = ["method", "slices", "row"] + [f"{f:g}" for f in fps] + ["Avg."]
    lines = [f"## {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in results.items():
        method, slices = _variant_label(name, {name: r.get("published") or {}})
        m, p, d = r["measured"]["all"], (r.get("published") or {}).get("all"), \
            (r.get("difference") or {}).get("all")
        if p:
            lines.append(f"| {method} | {slices} | published | " + " | ".join(_f(v) for v in p["sens"])
                         + f" | {_f(p.get('avg'))} |")
        cells = [f"{_f(v)} ± {100 * s:.2f}" if r["measured"]["all"]["avg"]["n"] > 1 else _f(v)
                 for v, s in zip(m["sens"], m["sens_std"])]
        n = r["measured"]["all"]["avg"]["n"]
        lines.append(f"| {method if not p else ''} | {slices if not p else ''} | measured "
                     f"({n} seed{'s' if n != 1 else ''}) | " + " | ".join(cells)
                     + f" | {_pm(m['avg'])} |")
        if p and d:
            marks = [_mark(x, b) for x, b in zip(d["sens"], d["beyond"])]
            lines.append("| | | difference | " + " | ".join(marks)
                         + f" | {_mark(d['avg'], d['avg_beyond'])} |")
    lines += ["", f"Sensitivity (%) at 0.5-16 false positives per image; Avg. over 0.5, 1, 2, 4. "
              f"**x!**: the difference exceeds the tolerance of {tolerance:g} points."]
    return "\n".join(lines) + "\n"


def render_table2(results: Mapping[str, dict], tolerance: float = DEFAULT_TOLERANCE,
                  title: str = "Table 2: analysis on thickness") -> str:
    """Markdown in the paper's Table 2 layout (All/Thin/Thick per variant, Avg. and diff. = subset
    Avg. minus All Avg.), each subset with published, measured and difference rows."""
    fps = DEFAULT_FPS
    head = ["method", "subset", "row"] + [f"{f:g}" for f in fps] + ["Avg.", "diff."]
    lines = [f"## {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in results.items():
        method, slices = _variant_label(name, {name: r.get("published") or {}})
        label = f"{method} x{slices}"
        for sub in SUBSETS:
            m = r["measured"][sub]
            p = (r.get("published") or {}).get(sub)
            d = (r.get("difference") or {}).get(sub)
            subname = sub.capitalize()
            if p:
                lines.append(f"| {label} | {subname} | published | "
                             + " | ".join(_f(v) for v in p["sens"])
                             + f" | {_f(p.get('avg'))} | {_f(p.get('diff'), True)} |")
            n = r["measured"]["all"]["avg"]["n"]
            cells = [f"{_f(v)} ± {100 * s:.2f}" if n > 1 else _f(v) for v, s in zip(m["sens"], m["sens_std"])]
            diff = _pm(m["diff"], True) if sub != "all" else "-"
            lines.append(f"| {'' if p else label} | {'' if p else subname} | measured | " + " | ".join(cells)
                         + f" | {_pm(m['avg'])} | {diff} |")
            if p and d:
                lines.append("| | | difference | "
                             + " | ".join(_mark(x, b) for x, b in zip(d["sens"], d["beyond"]))
                             + f" | {_mark(d['avg'], d['avg_beyond'])} | {_f(d.get('diff'), True)} |")
    lines += ["", f"Thin: slice interval <= {THIN_MAX_MM:g} mm, thick: > "
              f"{THIN_MAX_MM:g} mm; each subset is evaluated as its own image set. "
              f"**x!**: the difference exceeds the tolerance of {tolerance:g} points."]
    return "\n".join(lines) + "\n"


def render_gap_table(results: Mapping[str, dict]) -> str:
    """The benchmark's summary: All/Thin/Thick Avg. and the thin-thick gap, mean ± std over seeds,
    beside the paper's gap, and each seed's All Avg. (a run whose training failed shows there rather
    than only widening the std)."""
    lines = ["## Summary: the thin-thick gap", "",
             "| method | slices | seeds | All Avg. | Thin Avg. | Thick Avg. | gap (thin - thick) | "
             "published gap | All Avg. per seed |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        method, slices = _variant_label(name, {name: r.get("published") or {}})
        m = r["measured"]
        p = r.get("published") or {}
        pg = "-"
        if p.get("thin", {}).get("avg") is not None and p.get("thick", {}).get("avg") is not None:
            pg = _f(p["thin"]["avg"] - p["thick"]["avg"], True)
        runs = sorted(r.get("runs") or [], key=lambda run: run.get("seed", 0))
        per_seed = ", ".join(f"{run.get('seed', '?')}: {100 * run['all']['avg']:.1f}" for run in runs) or "-"
        lines.append(f"| {method} | {slices} | {m['all']['avg']['n']} | "
                     f"{_pm(m['all']['avg'])} | {_pm(m['thin']['avg'])} | {_pm(m['thick']['avg'])} | "
                     f"{_pm(m['gap'], True)} | {pg} | {per_seed} |")
    return "\n".join(lines) + "\n"


def plot_froc_panels(results: Mapping[str, dict], path: str, title: str = "") -> str:
    """One panel per variant: the mean All/Thin/Thick FROC curves over seeds, the published points
    (same colours, markers) overlaid. Written as a PNG via matplotlib (Agg); returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    cols = min(3, max(1, len(names)))
    rows = max(1, math.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), dpi=110, squeeze=False)
    fps = DEFAULT_FPS
    colours = {"all": "k", "thin": "tab:blue", "thick": "tab:red"}
    for ax, name in zip(axes.flat, names):
        r = results[name]
        method, slices = _variant_label(name, {name: r.get("published") or {}})
        for sub in SUBSETS:
            m = r["measured"][sub]
            if m.get("curve"):
                ax.plot(m["curve"]["fps"], [100 * v for v in m["curve"]["sens"]], "-", color=colours[sub],
                        label=f"{sub} {100 * m['avg']['mean']:.1f}")
            p = (r.get("published") or {}).get(sub)
            if p:
                pts = [(f, 100 * s) for f, s in zip(fps, p["sens"]) if s is not None]
                if pts:
                    ax.plot(*zip(*pts), "o", mfc="none", color=colours[sub], ms=5)
        ax.set_xscale("log", base=2)
        ax.set_xlim(0.125, 16)
        ax.set_xticks(fps)
        ax.set_xticklabels([f"{f:g}" for f in fps])
        ax.set_ylim(0, 100)
        ax.set_title(f"{method} x{slices}", fontsize=10)
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower right", fontsize=7, title="measured Avg.", title_fontsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("FPs per image")
    for ax in axes[:, 0]:
        ax.set_ylabel("sensitivity (%)")
    fig.suptitle((title + "\n" if title else "") + "lines: measured (mean over seeds); circles: published",
                 fontsize=9)
    fig.tight_layout()
    from ...fileio import atomic_path

    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return path


def build_results(runs: Mapping[str, Sequence[Mapping[str, dict]]],
                  tolerance: float = DEFAULT_TOLERANCE) -> Dict[str, dict]:
    """``{variant: [run summaries]}`` -> ``{variant: {"measured", "published", "difference", "runs"}}``
    in the order of the paper's variants."""
    published = paper_results()["variants"]
    order = [v for v in published if v in runs] + [v for v in runs if v not in published]
    out: Dict[str, dict] = {}
    for name in order:
        if not runs[name]:
            continue
        measured = aggregate_runs(runs[name])
        pub = published.get(name)
        out[name] = dict(measured=measured, published=pub,
                         difference=compare_with_published(measured, pub, tolerance) if pub else None,
                         runs=list(runs[name]))
    return out

