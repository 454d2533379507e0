"""A self-contained HTML report of a volume's lesion candidates, for any browser, offline.

One file: the scan's slices are inline images (data URIs), the page's script and style inline; it
loads nothing from the network. It shows

- the scan, slice by slice: a slider, the mouse wheel over the image and the arrow keys move through
  it (Page Up / Down by 10, Home / End);
- the candidates' boxes on every slice each candidate spans, labelled ``#id score``;
- window presets (soft tissue, lung, bone; keys 1-3);
- a table of the candidates (score, slices, centre in patient LPS mm, long x short axis); a click on
  a row goes to the candidate's best slice and highlights its box;
- the model's name, the scan's geometry, the notes of the run and how the images were stored.

**Images.** Each slice is stored as an 8-bit image of a piecewise-linear code of HU
(:data:`CODE_KNOTS`: 2.9 HU per level from -160 to 240 HU, coarser in the lung and bone ranges), and
the page maps the codes to grey through one 256-entry table per window preset. The encoding is the
first of :data:`ENCODINGS` that keeps the file within ``max_bytes``: lossless PNG, then lossy WebP at
quality 95 and 85, then WebP of slices downsampled in-plane by 2, 3, ...; the page states which.
Boxes and measurements are always at the scan's full resolution.

**Geometry.** Slices are shown in the working frame (:mod:`alignshift.inference.volume`): the
patient's right on the image's left, anterior at the top, slice numbers growing towards the head.
"""

from __future__ import annotations

import base64
import datetime
import html
import json
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..fileio import atomic_write
from ..version import __version__
from .outputs import VolumeResult
from .volume import WORKING_ORIENTATION, Volume

__all__ = ["CODE_KNOTS", "ENCODINGS", "REPORT_MAX_BYTES", "WINDOW_PRESETS", "ReportInfo", "display_lut",
           "encode_slices", "hu_to_code", "write_report"]

REPORT_MAX_BYTES = 25 * 1024 * 1024
WINDOW_PRESETS: Dict[str, Tuple[float, float]] = {
    "soft tissue": (-160.0, 240.0),  # W 400, L 40
    "lung": (-1350.0, 150.0),  # W 1500, L -600
    "bone": (-500.0, 1300.0),  # W 1800, L 400
}
# (HU, code) knots of the 8-bit code the images store: most levels where the soft-tissue window shows them
CODE_KNOTS: Tuple[Tuple[float, float], ...] = (
    (-1024.0, 0.0), (-160.0, 64.0), (240.0, 204.0), (1300.0, 255.0))
ENCODINGS: Tuple[Tuple[str, int, int], ...] = (
    ("png", 0, 1), ("webp", 95, 1), ("webp", 85, 1), *(("webp", 85, f) for f in range(2, 9)))
"""``(format, WebP quality, in-plane downsampling)`` in the order :func:`write_report` tries them."""


def hu_to_code(hu: np.ndarray) -> np.ndarray:
    """HU -> the uint8 code of :data:`CODE_KNOTS` (rounded; clipped below -1024 and above 1300 HU)."""
    knots_hu, knots_code = zip(*CODE_KNOTS)
    return np.rint(np.interp(hu, knots_hu, knots_code)).astype(np.uint8)


def display_lut(window: Tuple[float, float]) -> np.ndarray:
    """The grey level (uint8) the page shows for each of the 256 codes in the HU ``window``."""
    knots_hu, knots_code = zip(*CODE_KNOTS)
    hu = np.interp(np.arange(256, dtype=np.float64), knots_code, knots_hu)
    lo, hi = window
    return np.rint(np.clip((hu - lo) / (hi - lo), 0.0, 1.0) * 255.0).astype(np.uint8)


def _slice_codes(hu: np.ndarray, k: int, downsample: int) -> np.ndarray:
    im = hu[k]
    if downsample > 1:
        r, c = im.shape
        size = (max(1, -(-c // downsample)), max(1, -(-r // downsample)))
        im = cv2.resize(np.ascontiguousarray(im, dtype=np.float32), size, interpolation=cv2.INTER_AREA)
    return hu_to_code(im)


def _encode(codes: np.ndarray, fmt: str, quality: int) -> bytes:
    ext, params = (".png", [cv2.IMWRITE_PNG_COMPRESSION, 1]) if fmt == "png" else (
        ".webp", [cv2.IMWRITE_WEBP_QUALITY, quality])
    ok, buf = cv2.imencode(ext, codes, params)
    if not ok:
        raise RuntimeError(f"cannot encode a {codes.shape} slice as {fmt}")
    return buf.tobytes()


def encode_slices(hu: np.ndarray, fmt: str = "png", downsample: int = 1,
                  slices: Optional[Sequence[int]] = None, quality: int = 95) -> List[str]:
    """Base64 images of the HU code (:func:`hu_to_code`) of ``hu: (S, R, C)``, one per slice.

    Args:
        fmt: ``"png"`` (lossless) or ``"webp"`` (lossy).
        downsample: in-plane factor (area average; the image is ``ceil(R / f) x ceil(C / f)``).
        slices: which slices (default all).
        quality: WebP quality (1-100).
    """
    if fmt not in ("png", "webp"):
        raise ValueError(f"fmt must be 'png' or 'webp', got {fmt!r}")
    keys = range(hu.shape[0]) if slices is None else slices
    return [base64.b64encode(_encode(_slice_codes(hu, k, downsample), fmt, quality)).decode("ascii")
            for k in keys]


@dataclass
class ReportInfo:
    """What :func:`write_report` wrote: the file's size, how the images were stored, and the time taken."""

    path: str
    bytes: int
    image_format: str  # "png" or "webp"
    quality: int  # WebP quality (0 for PNG)
    downsample: int  # in-plane factor, 1 = full resolution
    image_size: Tuple[int, int]  # (width, height) of the stored images
    seconds: float
    statement: str  # the sentence the page shows about the images


def _statement(fmt: str, quality: int, downsample: int, size: Tuple[int, int], full: Tuple[int, int],
               max_bytes: int) -> str:
    levels = ("Intensities are stored with 256 levels: 2.9 HU per level from -160 to 240 HU, "
              "13.5 HU below, 20.8 HU above (clipped at -1024 and 1300 HU).")
    limit = f"{max_bytes / 2**20:.0f} MB"
    if fmt == "png" and downsample == 1:
        return f"Images: {size[0]} x {size[1]} pixels, the scan's full resolution, lossless (PNG). {levels}"
    what = f"Images: {size[0]} x {size[1]} pixels"
    if downsample > 1:
        what += (f", downsampled {downsample}x in-plane from the scan's {full[0]} x {full[1]} (area average)"
                 f" to keep this file under {limit}; boxes and measurements are at full resolution")
    else:
        what += ", the scan's full resolution"
    what += f", WebP quality {quality} (lossy)"
    if downsample == 1:
        what += f" to keep this file under {limit}"
    return f"{what}. {levels}"


def _first_fitting(hu: np.ndarray, budget: int) -> int:
    """The index in :data:`ENCODINGS` of the first encoding whose images, estimated from a sample of
    slices, take at most 90 % of ``budget`` (the last one when none does)."""
    n = hu.shape[0]
    sample = list(range(0, n, max(1, n // 16)))
    for i, (fmt, quality, f) in enumerate(ENCODINGS):
        est = sum(len(s) for s in encode_slices(hu, fmt, f, sample, quality)) * n / len(sample)
        if est <= 0.9 * budget:
            return i
    return len(ENCODINGS) - 1


def _lesions_json(result: VolumeResult) -> List[dict]:
    keep = ("lesion_id", "score", "slice_start", "slice_end", "best_slice", "box", "center_mm",
            "long_axis_mm", "short_axis_mm", "extent_mm")
    out = []
    for les in result.lesions:
        d = {k: les[k] for k in keep}
        d["slices"] = [dict(slice=int(s["slice"]), box=[round(float(v), 2) for v in s["box"]],
                            score=round(float(s["score"]), 4)) for s in les["slices"]]
        out.append(d)
    return out


def write_report(path: str, volume: Volume, result: VolumeResult, model_name: str, *,
                 max_bytes: int = REPORT_MAX_BYTES, title: Optional[str] = None) -> ReportInfo:
    """Write the HTML report of ``result`` on ``volume`` to ``path`` (written, then renamed).

    Args:
        path: the ``.html`` file.
        volume: the scan the detections were made on.
        result: :func:`alignshift.inference.detect_volume`'s result.
        model_name: shown on the page (a zoo name, or the config's).
        max_bytes: the file's size limit; the images take the best encoding that fits (see the
            module's docstring), the page says which.
        title: the page's title (default: the scan's file or folder name).

    Returns:
        a :class:`ReportInfo`.

    Raises:
        ValueError: when even the coarsest encoding does not fit ``max_bytes``.
    """
    t0 = time.perf_counter()
    hu = volume.hu
    num, rows, cols = hu.shape
    src_name = volume.source.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    lesions = _lesions_json(result)
    start = lesions[0]["best_slice"] if lesions else num // 2
    spacing = [float(v) for v in volume.spacing]
    data = dict(
        model=model_name, version=__version__, source=volume.source, series_uid=volume.series_uid,
        written=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        num_slices=num, size=[cols, rows], spacing=spacing, slice_interval=float(volume.slice_interval),
        orientation=WORKING_ORIENTATION, input_orientation=volume.input_orientation,
        origin=[float(v) for v in volume.image.GetOrigin()],
        direction=[float(v) for v in volume.image.GetDirection()],
        slice_z=[float(z) for z in volume.index_to_lps(np.array([[0.0, 0.0, k] for k in range(num)]))[:, 2]],
        score_thr=float(result.score_thr), slices_run=[int(result.slices[0]), int(result.slices[-1])]
        if result.slices else None, num_slices_run=len(result.slices), notes=list(result.notes),
        lesions=lesions, start_slice=int(start),
        presets={k: list(v) for k, v in WINDOW_PRESETS.items()},
        luts={k: display_lut(v).tolist() for k, v in WINDOW_PRESETS.items()})
    i = _first_fitting(hu, max_bytes)
    while True:
        fmt, quality, factor = ENCODINGS[i]
        images = encode_slices(hu, fmt, factor, quality=quality)
        size = (-(-cols // factor), -(-rows // factor))
        statement = _statement(fmt, quality, factor, size, (cols, rows), max_bytes)
        page = _page(dict(data, image=dict(format=fmt, mime=f"image/{fmt}",
                                           size=list(size), downsample=factor, statement=statement)),
                     images, title or src_name)
        encoded = page.encode("utf-8")
        if len(encoded) <= max_bytes:
            break
        i += 1
        if i >= len(ENCODINGS):
            raise ValueError(f"the report of {volume.source} does not fit {max_bytes} bytes even with "
                             f"images downsampled {factor}x ({len(encoded)} bytes)")
    with atomic_write(path, "wb") as f:
        f.write(encoded)
    return ReportInfo(path=path, bytes=len(encoded), image_format=fmt,
                      quality=quality if fmt == "webp" else 0, downsample=factor, image_size=size,
                      seconds=time.perf_counter() - t0, statement=statement)


def _json_for_script(obj) -> str:
    """JSON that cannot end the ``<script>`` element it sits in."""
    return json.dumps(obj, separators=(",", ":")).replace("<", "\\u003c").replace(">", "\\u003e")


def _page(data: dict, images: List[str], title: str) -> str:
    e = html.escape
    cols, rows = data["size"]
    sx, sy, _ = data["spacing"]
    geometry = [
        ("Scan", data["source"]),
        ("Series UID", data["series_uid"] or "-"),
        ("Size", f"{cols} x {rows} pixels, {data['num_slices']} slices"),
        ("Pixel spacing", f"{sx:.3f} x {sy:.3f} mm"),
        ("Slice interval", f"{data['slice_interval']:.3f} mm"),
        ("Orientation", f"shown as {data['orientation']} (the patient's right on the left, anterior at the "
                        f"top, slice numbers towards the head); stored as {data['input_orientation']}"),
        ("Origin (LPS)", ", ".join(f"{v:.2f}" for v in data["origin"]) + " mm"),
        ("Slices run", f"{data['num_slices_run']}" + (f" ({data['slices_run'][0]}-{data['slices_run'][1]})"
                                                       if data["slices_run"] else "")),
        ("Score threshold", f"{data['score_thr']:g}"),
    ]
    geo_rows = "\n".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in geometry)
    notes = "".join(f"<li>{e(n)}</li>" for n in data["notes"])
    presets = "".join(f'<button type="button" class="preset" data-preset="{e(p)}">{e(p)}</button>'
                      for p in data["presets"])
    lesion_rows = []
    for les in data["lesions"]:
        x, y, z = les["center_mm"]
        lesion_rows.append(
            f'<tr class="cand" data-lesion="{les["lesion_id"]}" data-best-slice="{les["best_slice"]}" '
            'tabindex="0">'
            f'<td>{les["lesion_id"]}</td><td>{les["score"]:.3f}</td>'
            f'<td>{les["slice_start"]}-{les["slice_end"]}</td><td>{les["best_slice"]}</td>'
            f"<td>{x:.1f}, {y:.1f}, {z:.1f}</td>"
            f'<td>{les["long_axis_mm"]:.1f} x {les["short_axis_mm"]:.1f}</td></tr>')
    table = "\n".join(lesion_rows) or ('<tr><td colspan="6">No candidate at or above the score threshold.'
                                       "</td></tr>")
    return _TEMPLATE.format(
        title=e(title), model=e(data["model"]), version=e(data["version"]), written=e(data["written"]),
        num=len(data["lesions"]), thr=f"{data['score_thr']:g}", geo_rows=geo_rows,
        notes=f"<h3>Notes</h3><ul>{notes}</ul>" if notes else "", presets=presets, table=table,
        statement=e(data["image"]["statement"]), last=data["num_slices"] - 1, start=data["start_slice"],
        aspect=f"{cols * sx:.4f} / {rows * sy:.4f}", ratio=f"{cols * sx / (rows * sy):.4f}",
        vb=f"0 0 {cols * sx:.4f} {rows * sy:.4f}",
        data=_json_for_script(data), images=_json_for_script(images), script=_SCRIPT, style=_STYLE)


_STYLE = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#f4f4f4;color:#222}
header{background:#1d2b36;color:#fff;padding:10px 16px}
header h1{font-size:18px;margin:0}
header p{margin:2px 0 0;color:#c8d3dc}
main{display:flex;flex-wrap:wrap;gap:16px;padding:16px}
#viewer-col{flex:1 1 520px;max-width:760px}
#side{flex:1 1 380px}
#viewer{position:relative;width:100%;background:#000;outline:none}
#view,#boxes{position:absolute;left:0;top:0;width:100%;height:100%}
#boxes rect{fill:none;stroke:#ff3b30;vector-effect:non-scaling-stroke;stroke-width:1.5}
#boxes rect.selected{stroke:#ffd60a;stroke-width:3}
#boxes text{fill:#ff3b30;font-weight:600;paint-order:stroke;stroke:#000;stroke-width:0.6px}
#boxes text.selected{fill:#ffd60a}
.orient{position:absolute;color:#ffd60a;font-weight:700;font-size:13px;text-shadow:0 0 3px #000}
#controls{display:flex;align-items:center;gap:8px;margin:8px 0;flex-wrap:wrap}
#slice{flex:1 1 240px}
#slice-label{min-width:190px;font-variant-numeric:tabular-nums}
button.preset{border:1px solid #888;background:#fff;padding:3px 8px;border-radius:4px;cursor:pointer}
button.preset.active{background:#1d2b36;color:#fff}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{border-bottom:1px solid #ddd;padding:4px 6px;text-align:left;font-variant-numeric:tabular-nums}
tr.cand{cursor:pointer}
tr.cand:hover{background:#eef4fb}
tr.cand.here{background:#fff3cd}
tr.cand.selected{outline:2px solid #d4a200}
.small{font-size:12px;color:#555}
h2{font-size:16px;margin:12px 0 6px}
h3{font-size:14px;margin:10px 0 4px}
"""

_SCRIPT = r"""
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("report-data").textContent);
  const IMAGES = JSON.parse(document.getElementById("report-images").textContent);
  const last = D.num_slices - 1;
  const [sx, sy] = D.spacing;
  const [w, h] = D.image.size;
  const prefix = "data:" + D.image.mime + ";base64,";
  const canvas = document.getElementById("view");
  canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext("2d");
  const scratch = document.createElement("canvas");
  scratch.width = w; scratch.height = h;
  const sctx = scratch.getContext("2d", {willReadFrequently: true});
  const slider = document.getElementById("slice");
  const label = document.getElementById("slice-label");
  const svg = document.getElementById("boxes");
  const viewer = document.getElementById("viewer");
  const images = new Array(D.num_slices);
  const bySlice = {};
  for (const les of D.lesions) {
    for (const s of les.slices) {
      (bySlice[s.slice] = bySlice[s.slice] || []).push({id: les.lesion_id, box: s.box, score: s.score});
    }
  }
  // the page's state, readable from outside (e.g. a test driving the browser)
  const state = window.reportState = {slice: D.start_slice, preset: Object.keys(D.presets)[0],
                                      selected: null, rendered: null};

  function image(k) {
    if (!images[k]) { images[k] = new Image(); images[k].src = prefix + IMAGES[k]; }
    return images[k];
  }

  function render() {
    const k = state.slice, preset = state.preset, im = image(k);
    if (!im.complete || !im.naturalWidth) { im.addEventListener("load", render, {once: true}); return; }
    sctx.drawImage(im, 0, 0);
    const px = sctx.getImageData(0, 0, w, h);
    const p = px.data, lut = D.luts[preset];
    for (let i = 0; i < p.length; i += 4) {
      const v = lut[p[i]];
      p[i] = v; p[i + 1] = v; p[i + 2] = v; p[i + 3] = 255;
    }
    ctx.putImageData(px, 0, 0);
    state.rendered = {slice: k, preset: preset};
    canvas.dataset.slice = k; canvas.dataset.preset = preset;
    for (const d of [k - 1, k + 1]) { if (d >= 0 && d <= last) image(d); }  // decode ahead
  }

  function drawBoxes() {
    const k = state.slice, ns = "http://www.w3.org/2000/svg";
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const fs = Math.max(w * sx, h * sy) * 0.028;
    for (const b of bySlice[k] || []) {
      const [x1, y1, x2, y2] = b.box;
      const r = document.createElementNS(ns, "rect");
      const sel = b.id === state.selected;
      r.setAttribute("x", x1 * sx); r.setAttribute("y", y1 * sy);
      r.setAttribute("width", (x2 - x1 + 1) * sx); r.setAttribute("height", (y2 - y1 + 1) * sy);
      r.dataset.lesion = b.id; r.dataset.slice = k; r.dataset.box = JSON.stringify(b.box);
      r.dataset.score = b.score;
      if (sel) r.setAttribute("class", "selected");
      const t = document.createElementNS(ns, "text");
      t.setAttribute("x", x1 * sx); t.setAttribute("y", Math.max(y1 * sy - fs * 0.3, fs));
      t.setAttribute("font-size", fs);
      if (sel) t.setAttribute("class", "selected");
      t.textContent = "#" + b.id + " " + b.score.toFixed(2);
      svg.appendChild(r); svg.appendChild(t);
    }
  }

  function update() {
    const k = state.slice;
    slider.value = k;
    label.textContent = "slice " + k + " / " + last + ", z " + D.slice_z[k].toFixed(1) + " mm";
    for (const b of document.querySelectorAll("button.preset")) {
      b.classList.toggle("active", b.dataset.preset === state.preset);
    }
    for (const tr of document.querySelectorAll("tr.cand")) {
      const les = D.lesions.find(l => l.lesion_id === +tr.dataset.lesion);
      tr.classList.toggle("here", k >= les.slice_start && k <= les.slice_end);
      tr.classList.toggle("selected", les.lesion_id === state.selected);
    }
    drawBoxes();
    render();
  }

  function setSlice(k) { state.slice = Math.min(last, Math.max(0, Math.round(k))); update(); }

  slider.addEventListener("input", () => setSlice(+slider.value));
  viewer.addEventListener("wheel", (e) => {
    e.preventDefault();
    setSlice(state.slice + Math.sign(e.deltaY));
  }, {passive: false});
  document.addEventListener("keydown", (e) => {
    if (e.target === slider || e.altKey || e.ctrlKey || e.metaKey) return;
    const steps = {ArrowUp: 1, ArrowRight: 1, ArrowDown: -1, ArrowLeft: -1, PageUp: 10, PageDown: -10};
    const names = Object.keys(D.presets);
    if (e.key in steps) setSlice(state.slice + steps[e.key]);
    else if (e.key === "Home") setSlice(0);
    else if (e.key === "End") setSlice(last);
    else if (e.key >= "1" && e.key <= String(names.length)) { state.preset = names[+e.key - 1]; update(); }
    else if (e.key === "Enter" && e.target.classList && e.target.classList.contains("cand")) e.target.click();
    else return;
    e.preventDefault();
  });
  for (const b of document.querySelectorAll("button.preset")) {
    b.addEventListener("click", () => { state.preset = b.dataset.preset; update(); });
  }
  for (const tr of document.querySelectorAll("tr.cand")) {
    tr.addEventListener("click", () => {
      state.selected = +tr.dataset.lesion;
      setSlice(+tr.dataset.bestSlice);
    });
  }
  update();
})();
"""

_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy"
      content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>{title}: lesion candidates</title>
<style>{style}</style>
</head>
<body>
<header>
<h1>{title}: {num} lesion candidates</h1>
<p>Model <b id="model">{model}</b>, score &ge; {thr}; alignshift {version}, {written}.
Research software: candidates for a reader to check, not a diagnosis.</p>
</header>
<main>
<section id="viewer-col">
<div id="viewer" tabindex="0" style="aspect-ratio: {aspect}; width: min(100%, calc(80vh * {ratio}))">
<canvas id="view"></canvas>
<svg id="boxes" viewBox="{vb}" preserveAspectRatio="none"></svg>
<span class="orient" style="left:4px;top:48%">R</span>
<span class="orient" style="right:4px;top:48%">L</span>
<span class="orient" style="left:49%;top:2px">A</span>
<span class="orient" style="left:49%;bottom:2px">P</span>
</div>
<div id="controls">
<input type="range" id="slice" min="0" max="{last}" value="{start}" aria-label="slice">
<span id="slice-label"></span>
</div>
<div id="controls-2">Window: {presets}
<span class="small">Wheel or arrow keys: slices; Page Up / Down: 10 slices; 1-3: window.</span></div>
<p class="small" id="image-statement">{statement}</p>
</section>
<section id="side">
<h2>Candidates</h2>
<table id="candidates">
<thead><tr><th>#</th><th>score</th><th>slices</th><th>best</th><th>centre LPS (mm)</th>
<th>long x short (mm)</th></tr></thead>
<tbody>
{table}
</tbody>
</table>
<p class="small">Click a row to go to the candidate's best slice. Centre: of the candidate's 3D box,
in patient LPS millimetres (x to the patient's left, y to the back, z to the head). Axes: the sides of
its largest box, RECIST-like (an upper bound of the diameters for a lesion at an angle).</p>
<h2>Scan</h2>
<table id="geometry">
{geo_rows}
</table>
{notes}
</section>
</main>
<script type="application/json" id="report-data">{data}</script>
<script type="application/json" id="report-images">{images}</script>
<script>{script}</script>
</body>
</html>
"""
