"""A synthetic benchmark in which the slice interval decides how hard detection is.

Each *volume* is one piece of CT-like anatomy defined in millimetres along z. Into a body of fat
and soft tissue with a spine go two kinds of round, lesion-contrast objects that are drawn from the
same in-plane distribution (radius, elongation, HU):

- **lesions**: ellipsoids whose half-extent along z is 2.5-7 mm;
- **look-alikes**: tubes that run through the whole series along z: straight, slightly tilted
  *vessels* and *bowel loops* whose centre wanders in x and y as z changes.

On the key slice a lesion and a look-alike are indistinguishable; only their extent along z, in mm,
tells them apart. Every volume is written twice, as a **thin** series (interval 0.625-2 mm) and a
**thick** one (5 mm), with the same anatomy and the same key slice (z = 0). A slice integrates its
slab (partial volume: a 5 mm slice averages 5 mm of anatomy), so thick slices blur z detail as a
real scanner does. A detector sees the key slice plus neighbours: how many millimetres they cover
depends on the number of slices, the interval and whether the loader resamples them, which is
exactly what 2.5D, TSM and AlignShift do differently.

The output is the DeepLesion release format (``DL_info.csv`` + ``Images_png/``), read by the
same loader, annotation tool and detectors as the real data. Deterministic for a given spec.

Beyond the release format, for the analyses that pair what is paired:

- **the thickness sweep** (``BenchmarkSpec.sweep``): every test volume is also written at each
  interval of :data:`SWEEP_INTERVALS`, same anatomy and key slice; its rows are in
  ``DL_info_sweep.csv`` (the release format again), and the volume's own thin and thick series
  stand for their intervals, so the test split is a subset of the sweep;
- **a larger test split** (``BenchmarkSpec.min_test_lesions``): test-only volumes are appended after
  the ``num_volumes`` split ones, which stay as they were (the training data do not change);
- ``lesions.csv``: one row per (key image, lesion) of both CSVs with a **lesion id** that is the
  same in every series of a volume, its volume and interval;
- ``benchmark/*.json`` (:func:`write_benchmark_annotations`): COCO annotations in the format of
  ``tools/prepare_deeplesion.py`` with the lesion ids, for the sweep and for the cross-thickness
  training subsets (the training split's thin series only, and its thick series only).
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..errors import UserError
from .deeplesion import (
    DL_INFO_COLUMNS,
    HU_OFFSET,
    THIN_MAX_MM,
    dl_info_row,
    image_relpath,
    parse_dl_info,
    records_to_coco,
    select_split,
)

__all__ = ["BenchmarkSpec", "make_thickness_benchmark", "write_benchmark_annotations",
           "lesion_ids_by_image", "plan_volumes", "LESION_HALF_EXTENT_MM", "THIN_INTERVALS",
           "THICK_INTERVAL", "SWEEP_INTERVALS", "SWEEP_CSV", "LESIONS_CSV", "ANNOTATION_DIR",
           "ANNOTATION_FILES", "LESION_COLUMNS", "OUTPUTS", "PARTIAL"]

THIN_INTERVALS = (0.625, 1.0, 1.25, 2.0)
THICK_INTERVAL = 5.0
# the test-time sweep: every test volume at each of these intervals
SWEEP_INTERVALS = (0.625, 1.0, 1.25, 2.0, 2.5, 3.0, 4.0, 5.0)
SWEEP_STUDY_BASE = 10  # a sweep series of its own, at SWEEP_INTERVALS[i], is study 10 + i
LESION_HALF_EXTENT_MM = (2.5, 7.0)
SERIES_HALF_EXTENT_MM = 20.0  # each series covers z = -20..+20 mm around the key slice
BOX_PAD_PX = 4  # DeepLesion's boxes are the RECIST extent padded by a few pixels
SPLIT_CODES = {"train": 1, "val": 2, "test": 3}
SWEEP_CSV = "DL_info_sweep.csv"
LESIONS_CSV = "lesions.csv"
LESION_COLUMNS = ("File_name", "Lesion_index", "Lesion_id", "Volume", "Interval_mm", "Split",
                  "Standard", "Sweep")
ANNOTATION_DIR = "benchmark"  # beside tools/prepare_deeplesion.py's annotations/
ANNOTATION_FILES = {"sweep": "deeplesion_sweep.json", "train_thin": "deeplesion_train_thin.json",
                    "train_thick": "deeplesion_train_thick.json"}
# what make_thickness_benchmark writes into its folder, and where it builds them first
OUTPUTS = ("DL_info.csv", "Images_png", SWEEP_CSV, LESIONS_CSV, ANNOTATION_DIR)
PARTIAL = ".benchmark.partial"


@dataclass
class BenchmarkSpec:
    """Size of a benchmark.

    Attributes:
        num_volumes: pieces of anatomy split train/val/test by ``split_fractions``; each is written
            as a thin and a thick series (so ``2 * num_volumes`` key images).
        image_size: pixels (>= 64).
        seed: everything drawn follows from it.
        split_fractions: train/val/test fractions of ``num_volumes``, by volume.
        min_test_lesions: test-only volumes (thin and thick series too) are appended after the
            ``num_volumes`` until the test split holds at least this many lesions; 0 adds none.
            The first ``num_volumes`` and their split do not depend on it.
        sweep: also write every test volume at each interval of :data:`SWEEP_INTERVALS`.
    """

    num_volumes: int = 120
    image_size: int = 64
    seed: int = 0
    split_fractions: Tuple[float, float, float] = (0.5, 0.05, 0.45)
    min_test_lesions: int = 0
    sweep: bool = False


@dataclass
class _Object:
    x: float  # in-plane centre at z = 0, pixels
    y: float
    ra: float  # in-plane semi-axes, pixels
    rb: float
    theta: float
    hu: float
    kind: str  # "lesion", "vessel" or "bowel"
    rz: float = 0.0  # lesion half-extent along z, mm
    zc: float = 0.0  # lesion centre along z, mm
    drift: Tuple[float, float] = (0.0, 0.0)  # vessel tilt, pixels per mm
    wave: Tuple[float, float, float, float] = (0.0, 0.0, 1.0, 0.0)  # bowel: ax, ay, period mm, phase

    def centre(self, z: float) -> Tuple[float, float]:
        if self.kind == "vessel":
            return self.x + self.drift[0] * z, self.y + self.drift[1] * z
        if self.kind == "bowel":
            ax, ay, period, phase = self.wave
            s = math.sin(2 * math.pi * z / period + phase) - math.sin(phase)
            c = math.cos(2 * math.pi * z / period + phase) - math.cos(phase)
            return self.x + ax * s, self.y + ay * c
        return self.x, self.y

    def weight(self, xx: np.ndarray, yy: np.ndarray, z: float) -> np.ndarray:
        """Soft occupancy (0..1) of this object on the plane at ``z`` mm; xx, yy: (H, W)."""
        cx, cy = self.centre(z)
        scale = 1.0
        if self.kind == "lesion":
            t = 1.0 - ((z - self.zc) / self.rz) ** 2
            if t <= 0:
                return np.zeros_like(xx)
            scale = math.sqrt(t)
        c, s = math.cos(self.theta), math.sin(self.theta)
        dx, dy = xx - cx, yy - cy
        u = (dx * c + dy * s) / (self.ra * scale)
        v = (-dx * s + dy * c) / (self.rb * scale)
        r = np.sqrt(u * u + v * v)
        # a smooth edge about one pixel wide, whatever the radius
        return 1.0 / (1.0 + np.exp(np.clip((r - 1.0) * max(self.ra * scale, 1.0) * 1.5, -30, 30)))


def _split_of(spec: BenchmarkSpec, v: int) -> int:
    """Split code of volume ``v``: a seeded permutation cut at the fractions, each split >= 1 volume;
    the volumes appended after ``num_volumes`` are test volumes."""
    if v >= spec.num_volumes:
        return SPLIT_CODES["test"]
    rank = int(np.argsort(np.random.default_rng([spec.seed, 7]).permutation(spec.num_volumes))[v])
    n_train = max(1, int(round(spec.split_fractions[0] * spec.num_volumes)))
    n_val = max(1, int(round(spec.split_fractions[1] * spec.num_volumes)))
    return 1 if rank < n_train else (2 if rank < n_train + n_val else 3)


def _num_lesions(spec: BenchmarkSpec, v: int) -> int:
    return sum(o.kind == "lesion" for o in _volume(spec, v)[1])


def plan_volumes(spec: BenchmarkSpec) -> Tuple[int, int]:
    """How many volumes ``spec`` writes in all, and how many lesions its test split holds
    (per interval: every series of a volume holds all its lesions)."""
    test = sum(_num_lesions(spec, v) for v in range(spec.num_volumes)
               if _split_of(spec, v) == SPLIT_CODES["test"])
    n = spec.num_volumes
    while test < spec.min_test_lesions:
        test += _num_lesions(spec, n)
        n += 1
    return n, test


def _volume(spec: BenchmarkSpec, v: int):
    """Anatomy of volume ``v``: base image (H, W) in HU, body mask and objects."""
    rng = np.random.default_rng([spec.seed, v])
    n = spec.image_size
    px = n / 64.0  # object sizes below are in pixels of a 64-pixel image
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    cx, cy = n / 2 + rng.uniform(-1, 1) * px, n / 2 + rng.uniform(-1, 1) * px
    ax, ay = n * rng.uniform(0.44, 0.48), n * rng.uniform(0.38, 0.43)
    base = np.full((n, n), -1000.0, np.float32)
    base[((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2 <= 1] = -100.0  # fat
    inner = ((xx - cx) / (ax * 0.9)) ** 2 + ((yy - cy) / (ay * 0.88)) ** 2 <= 1
    base[inner] = 40.0  # soft tissue
    spine_r = 4.0 * px
    sx, sy = cx, cy + ay * 0.62
    base[(xx - sx) ** 2 + (yy - sy) ** 2 <= spine_r ** 2] = 600.0

    objects: List[_Object] = []
    kinds = ["lesion"] * int(rng.choice([1, 1, 2, 3]))
    kinds += [str(rng.choice(["vessel", "bowel"])) for _ in range(int(rng.choice([1, 2, 2, 3])))]
    for kind in kinds:
        ra = rng.uniform(3.5, 7.0) * px
        rb = ra * rng.uniform(0.75, 1.0)
        hu = 40.0 + float(rng.choice([-1.0, 1.0, 1.0])) * rng.uniform(70, 170)
        spot = _place(rng, inner, objects, ra, (sx, sy, spine_r), n, px)
        if spot is None:  # a crowded slice: this object is left out
            continue
        x, y = spot
        o = _Object(x, y, ra, rb, float(rng.uniform(0, math.pi)), hu, kind)
        if kind == "lesion":
            o.rz = float(rng.uniform(*LESION_HALF_EXTENT_MM))
            o.zc = float(rng.uniform(-0.2, 0.2) * o.rz)
        elif kind == "vessel":
            o.drift = (float(rng.uniform(-0.08, 0.08) * px), float(rng.uniform(-0.08, 0.08) * px))
        else:
            o.wave = (float(rng.uniform(1.0, 2.5) * px), float(rng.uniform(1.0, 2.5) * px),
                      float(rng.uniform(25, 45)), float(rng.uniform(0, 2 * math.pi)))
        objects.append(o)
    return base, objects, rng


def _place(rng: np.random.Generator, inner: np.ndarray, taken: Sequence[_Object], r: float,
           spine: Tuple[float, float, float], n: int, px: float) -> Optional[Tuple[float, float]]:
    ys, xs = np.nonzero(inner)
    margin = r + BOX_PAD_PX + 3 * px  # bowel loops wander up to 2.5 px
    for _ in range(500):
        k = int(rng.integers(len(xs)))
        x, y = float(xs[k]), float(ys[k])
        if not (margin < x < n - 1 - margin and margin < y < n - 1 - margin):
            continue
        if math.hypot(x - spine[0], y - spine[1]) < r + spine[2] + 2 * px:
            continue
        if all(math.hypot(x - t.x, y - t.y) > r + t.ra + 5 * px for t in taken):
            return x, y
    return None


def _render(base: np.ndarray, objects: Sequence[_Object], z: float, dz: float,
            rng: np.random.Generator) -> np.ndarray:
    """The slice centred at ``z`` mm: the mean of its slab [z - dz/2, z + dz/2], plus noise."""
    n = base.shape[0]
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    k = max(1, int(round(dz / 0.625)))
    acc = np.zeros_like(base)
    for j in range(k):
        zz = z + ((j + 0.5) / k - 0.5) * dz
        im = base.copy()
        for o in objects:
            im += o.weight(xx, yy, zz) * (o.hu - im)
        acc += im
    acc /= k
    return acc + rng.normal(0, 10, acc.shape).astype(np.float32)


def _rows(o: _Object, name: str, key: int, meta: dict) -> List:
    """One DL_info row for lesion ``o``: RECIST on the key slice (z = 0), 1-based coordinates."""
    t = max(0.0, 1.0 - (o.zc / o.rz) ** 2)
    a, b = o.ra * math.sqrt(t), o.rb * math.sqrt(t)
    c, s = math.cos(o.theta), math.sin(o.theta)
    pts = np.array([o.x - a * c, o.y - a * s, o.x + a * c, o.y + a * s,
                    o.x + b * s, o.y - b * c, o.x - b * s, o.y + b * c])
    xs, ys = pts[0::2], pts[1::2]
    box = np.array([xs.min() - BOX_PAD_PX, ys.min() - BOX_PAD_PX, xs.max() + BOX_PAD_PX,
                    ys.max() + BOX_PAD_PX])
    n = meta["size"]
    return dl_info_row(f"{name}_{key:03d}.png", meta["patient"], meta["study"], 1, key, pts, box,
                       [2 * a, 2 * b], [o.x / n, o.y / n, 0.5], 1, False, (meta["lo"], meta["hi"]),
                       (meta["spacing"], meta["spacing"], meta["dz"]), (n, n), split=meta["split"])


@dataclass
class _Series:
    name: str
    dz: float
    first: int  # first slice number; the key slice is first + half
    half: int  # slices on each side of the key slice
    noise: np.random.Generator
    rows: List[List]  # DL_info rows, one per lesion, in the volume's lesion order
    standard: bool  # the volume's thin or thick series (DL_info.csv)
    sweep: bool  # in DL_info_sweep.csv

    def slices(self, base: np.ndarray, objects: Sequence[_Object]) -> Iterator[Tuple[int, np.ndarray]]:
        key = self.first + self.half
        for k in range(self.first, self.first + 2 * self.half + 1):
            yield k, _render(base, objects, (k - key) * self.dz, self.dz, self.noise)


def _series(spec: BenchmarkSpec, v: int, base: np.ndarray, objects: Sequence[_Object],
            rng: np.random.Generator) -> List[_Series]:
    """The series of volume ``v``: thin, thick, then (test volumes of a sweep) the other intervals.

    ``rng`` is the volume's generator after its anatomy (:func:`_volume`); the thin and thick series
    draw from it exactly as before the sweep existed, so their images do not depend on ``spec.sweep``.
    """
    split = _split_of(spec, v)
    spacing = 0.8 * 512 / spec.image_size
    lesions = [o for o in objects if o.kind == "lesion"]
    in_sweep = spec.sweep and split == SPLIT_CODES["test"]

    def make(study: int, dz: float, first: int, noise: np.random.Generator, standard: bool) -> _Series:
        half = int(math.floor(SERIES_HALF_EXTENT_MM / dz + 1e-9))
        name = f"{v + 1:06d}_{study:02d}_01"
        meta = dict(patient=v + 1, study=study, lo=first, hi=first + 2 * half, spacing=spacing,
                    dz=dz, size=spec.image_size, split=split)
        rows = [_rows(o, name, first + half, meta) for o in lesions]
        return _Series(name, dz, first, half, noise, rows, standard, in_sweep)

    thin = float(rng.choice(THIN_INTERVALS))
    out = [make(study, dz, 1 + int(rng.integers(0, 30)), np.random.default_rng([spec.seed, v, study]),
                True) for study, dz in ((1, thin), (2, THICK_INTERVAL))]
    if in_sweep:
        for i, dz in enumerate(SWEEP_INTERVALS):
            if any(abs(dz - s.dz) < 1e-9 for s in out[:2]):
                continue  # the volume's own thin or thick series stands for this interval
            study = SWEEP_STUDY_BASE + i
            r = np.random.default_rng([spec.seed, v, study])
            out.append(make(study, dz, 1 + int(r.integers(0, 30)), r, False))
    return out


def _check_spec(spec: BenchmarkSpec) -> None:
    if spec.image_size < 64:
        raise ValueError(f"image_size must be >= 64, got {spec.image_size}")
    if spec.num_volumes < 3:
        raise ValueError(f"num_volumes must be >= 3 (train, val and test), got {spec.num_volumes}")
    if len(spec.split_fractions) != 3 or abs(sum(spec.split_fractions) - 1) > 1e-6:
        raise ValueError(f"split_fractions must be three numbers summing to 1, got {spec.split_fractions}")
    if spec.min_test_lesions < 0:
        raise ValueError(f"min_test_lesions must be >= 0, got {spec.min_test_lesions}")


def make_thickness_benchmark(out_dir: str, spec: Optional[BenchmarkSpec] = None,
                             progress: Optional[Callable[[Iterator], Iterator]] = None) -> str:
    """Write the benchmark into ``out_dir``; return the path of its ``DL_info.csv``.

    Writes ``DL_info.csv`` and ``Images_png/`` (the release format: every volume's thin and thick
    series), ``DL_info_sweep.csv`` (the sweep's series, header only without ``spec.sweep``),
    ``lesions.csv`` (:data:`LESION_COLUMNS`: the lesion id, volume and interval of every row of both
    CSVs) and ``benchmark/*.json`` (:func:`write_benchmark_annotations`).

    Args:
        out_dir: the dataset folder. It may be missing or hold anything but these entries (one of
            them there is refused with :class:`~alignshift.errors.UserError`): nothing already there
            is touched. Everything is written under :data:`PARTIAL` inside it and moved into place
            when complete, ``DL_info.csv`` last, so a folder with a ``DL_info.csv`` is complete.
        spec: sizes and seed (default :class:`BenchmarkSpec`).
        progress: optional wrapper of the volume iterator (e.g. ``tqdm``); it has a ``len``.

    Raises:
        ValueError: on a spec that cannot hold the anatomy.
    """
    spec = spec or BenchmarkSpec()
    _check_spec(spec)
    out_dir = os.path.abspath(out_dir)
    present = [n for n in OUTPUTS if os.path.lexists(os.path.join(out_dir, n))]
    if present:
        raise UserError(f"{out_dir} already holds {', '.join(present)}; expected a folder without a "
                        "benchmark in it", field="out_dir")
    tmp = os.path.join(out_dir, PARTIAL)
    shutil.rmtree(tmp, ignore_errors=True)  # a killed run's leftover: this function's own folder
    os.makedirs(tmp)
    rows: List[List] = []
    sweep_rows: List[List] = []
    manifest: List[List] = []
    num_total, _ = plan_volumes(spec)
    volumes: Sequence[int] = range(num_total)
    if progress is not None:
        volumes = progress(volumes)
    for v in volumes:
        base, objects, rng = _volume(spec, v)
        series = _series(spec, v, base, objects, rng)
        for s in sorted(series, key=lambda s: s.dz) if spec.sweep else series:
            folder = os.path.join(tmp, "Images_png", s.name)
            os.makedirs(folder)
            for k, im in s.slices(base, objects):
                png = np.clip(np.round(im) + HU_OFFSET, 0, 65535).astype(np.uint16)
                cv2.imwrite(os.path.join(folder, f"{k:03d}.png"), png)
            if s.standard:
                rows.extend(s.rows)
            if s.sweep:
                sweep_rows.extend(s.rows)
            for j, row in enumerate(s.rows):
                manifest.append([row[0], j, f"{v + 1:06d}-{j + 1}", v + 1, f"{s.dz:g}", row[-1],
                                 int(s.standard), int(s.sweep)])
    for name, table, header in (("DL_info.csv", rows, DL_INFO_COLUMNS),
                                (SWEEP_CSV, sweep_rows, DL_INFO_COLUMNS),
                                (LESIONS_CSV, manifest, LESION_COLUMNS)):
        with open(os.path.join(tmp, name), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(table)
    write_benchmark_annotations(tmp)
    for name in OUTPUTS[::-1]:  # DL_info.csv last: its presence says the rest is complete
        os.replace(os.path.join(tmp, name), os.path.join(out_dir, name))
    os.rmdir(tmp)
    return os.path.join(out_dir, "DL_info.csv")


def _read_lesions_csv(path: str) -> Tuple[Dict[Tuple[str, int], str], Dict[str, bool]]:
    """From lesions.csv: ``(image file name relative to Images_png, lesion index) -> lesion id``, and
    ``file name -> whether the image is in DL_info.csv`` (the volume's own thin or thick series)."""
    ids: Dict[Tuple[str, int], str] = {}
    standard: Dict[str, bool] = {}
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or tuple(header) != LESION_COLUMNS:
            raise ValueError(f"{path}: line 1: expected the columns {list(LESION_COLUMNS)}, got {header}")
        for line, row in enumerate(reader, start=2):
            if len(row) != len(LESION_COLUMNS):
                raise ValueError(f"{path}: line {line}: expected {len(LESION_COLUMNS)} columns, "
                                 f"got {len(row)}")
            name = image_relpath(row[0])
            ids[(name, int(row[1]))] = row[2]
            standard[name] = row[6] == "1"
    return ids, standard


def _coco_with_ids(records, split: str, lesions: Tuple[Dict[Tuple[str, int], str], Dict[str, bool]],
                   where: str) -> dict:
    ids, standard = lesions
    coco = records_to_coco(records, split)
    order: Dict[int, int] = {}
    by_id = {img["id"]: img for img in coco["images"]}
    for img in coco["images"]:
        img["volume"] = img["patient"]
        img["standard"] = standard.get(img["file_name"], False)
    for a in coco["annotations"]:
        img = by_id[a["image_id"]]
        j = order.get(a["image_id"], 0)
        order[a["image_id"]] = j + 1
        key = (img["file_name"], j)
        if key not in ids:
            raise ValueError(f"{where}: {img['file_name']} lesion {j} has no row in {LESIONS_CSV}")
        a["lesion_id"] = ids[key]
    return coco


def write_benchmark_annotations(root: str) -> Dict[str, str]:
    """Write ``root/benchmark/``: the sweep's and the cross-thickness training subsets' annotations.

    From ``root/DL_info.csv``, ``root/DL_info_sweep.csv`` and ``root/lesions.csv`` (as
    :func:`make_thickness_benchmark` writes them), three COCO files in the format of
    ``tools/prepare_deeplesion.py`` (:func:`~alignshift.data.records_to_coco`), each image with its
    ``volume`` and ``standard`` (true for a volume's own thin or thick series, the images of
    ``DL_info.csv``), each annotation with its ``lesion_id`` (the same in every series of a volume):

    - ``deeplesion_sweep.json``: every sweep series of the test split (empty without a sweep); its
      images with ``standard`` true are the test split of ``DL_info.csv``, the thin and thick
      series of Tables 1 and 2, so one test run on the sweep also gives those tables;
    - ``deeplesion_train_thin.json``: the training split's thin series (interval <= 2 mm) only;
    - ``deeplesion_train_thick.json``: the training split's thick series (5 mm) only.

    Returns ``{"sweep" | "train_thin" | "train_thick": path}``. Files are written then renamed.
    """
    ids = _read_lesions_csv(os.path.join(root, LESIONS_CSV))
    main = os.path.join(root, "DL_info.csv")
    sweep_csv = os.path.join(root, SWEEP_CSV)
    train, _ = select_split(parse_dl_info(main), "train")
    sweep, _ = select_split(parse_dl_info(sweep_csv), "test")
    subsets = {
        "sweep": (_coco_with_ids(sweep, "test", ids, sweep_csv)),
        "train_thin": _coco_with_ids([r for r in train if r.thickness <= THIN_MAX_MM], "train", ids, main),
        "train_thick": _coco_with_ids([r for r in train if abs(r.thickness - THICK_INTERVAL) < 1e-6],
                                      "train", ids, main),
    }
    folder = os.path.join(root, ANNOTATION_DIR)
    os.makedirs(folder, exist_ok=True)
    paths = {}
    for key, coco in subsets.items():
        path = os.path.join(folder, ANNOTATION_FILES[key])
        with open(path + ".tmp", "w") as f:
            json.dump(coco, f)
        os.replace(path + ".tmp", path)
        paths[key] = path
    return paths


def lesion_ids_by_image(coco: dict) -> Dict[int, List[str]]:
    """``image id -> lesion ids`` in annotation order (the order of an image's ground-truth boxes
    in the detectors' predictions), from an annotation dict of :func:`write_benchmark_annotations`."""
    out: Dict[int, List[str]] = {img["id"]: [] for img in coco["images"]}
    for a in coco["annotations"]:
        if "lesion_id" not in a:
            raise KeyError(f"annotation {a.get('id')} of image {a.get('image_id')} has no 'lesion_id'")
        out[a["image_id"]].append(a["lesion_id"])
    return out
