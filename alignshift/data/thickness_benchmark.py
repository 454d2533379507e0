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
same loader, annotation tool and detectors as the real data. Deterministic for a given seed.
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..errors import UserError
from .deeplesion import HU_OFFSET, dl_info_row, write_dl_info
from .synthetic import PARTIAL_IMAGES

__all__ = ["BenchmarkSpec", "make_thickness_benchmark", "LESION_HALF_EXTENT_MM", "THIN_INTERVALS",
           "THICK_INTERVAL"]

THIN_INTERVALS = (0.625, 1.0, 1.25, 2.0)
THICK_INTERVAL = 5.0
LESION_HALF_EXTENT_MM = (2.5, 7.0)
SERIES_HALF_EXTENT_MM = 20.0  # each series covers z = -20..+20 mm around the key slice
BOX_PAD_PX = 4  # DeepLesion's boxes are the RECIST extent padded by a few pixels
SPLIT_CODES = {"train": 1, "val": 2, "test": 3}


@dataclass
class BenchmarkSpec:
    """Size of a benchmark: ``num_volumes`` pieces of anatomy, each written as a thin and a thick
    series (so ``2 * num_volumes`` key images). ``split_fractions`` are train/val/test by volume."""

    num_volumes: int = 120
    image_size: int = 64
    seed: int = 0
    split_fractions: Tuple[float, float, float] = (0.5, 0.05, 0.45)


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
    """Split code of volume ``v``: a seeded permutation cut at the fractions, each split >= 1 volume."""
    rank = int(np.argsort(np.random.default_rng([spec.seed, 7]).permutation(spec.num_volumes))[v])
    n_train = max(1, int(round(spec.split_fractions[0] * spec.num_volumes)))
    n_val = max(1, int(round(spec.split_fractions[1] * spec.num_volumes)))
    return 1 if rank < n_train else (2 if rank < n_train + n_val else 3)


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


def _series(spec: BenchmarkSpec, v: int) -> Iterator[Tuple[str, Iterator[Tuple[int, np.ndarray]], List]]:
    """The thin and the thick series of volume ``v``: (name, slices, DL_info rows) each."""
    base, objects, rng = _volume(spec, v)
    split = _split_of(spec, v)
    spacing = 0.8 * 512 / spec.image_size
    thin = float(rng.choice(THIN_INTERVALS))
    for study, dz in ((1, thin), (2, THICK_INTERVAL)):
        half = int(math.floor(SERIES_HALF_EXTENT_MM / dz + 1e-9))
        first = 1 + int(rng.integers(0, 30))
        key = first + half
        name = f"{v + 1:06d}_{study:02d}_01"
        meta = dict(patient=v + 1, study=study, lo=first, hi=first + 2 * half, spacing=spacing,
                    dz=dz, size=spec.image_size, split=split)
        rows = [_rows(o, name, key, meta) for o in objects if o.kind == "lesion"]
        noise = np.random.default_rng([spec.seed, v, study])

        def slices(dz=dz, first=first, key=key, half=half, noise=noise):
            for k in range(first, first + 2 * half + 1):
                yield k, _render(base, objects, (k - key) * dz, dz, noise)

        yield name, slices(), rows


def make_thickness_benchmark(out_dir: str, spec: Optional[BenchmarkSpec] = None,
                             progress: Optional[Callable[[Iterator], Iterator]] = None) -> str:
    """Write ``out_dir/DL_info.csv`` and ``out_dir/Images_png/``; return the CSV path.

    Args:
        out_dir: the dataset folder. It may be missing or hold anything but ``DL_info.csv`` and
            ``Images_png`` (refused with :class:`~alignshift.errors.UserError`): nothing already there
            is touched. The images are written under ``.Images_png.partial`` and renamed into
            place, and ``DL_info.csv`` comes last, so a folder with a ``DL_info.csv`` is complete.
        spec: sizes and seed (default :class:`BenchmarkSpec`).
        progress: optional wrapper of the volume iterator (e.g. ``tqdm``).

    Raises:
        ValueError: on a spec that cannot hold the anatomy.
    """
    spec = spec or BenchmarkSpec()
    if spec.image_size < 64:
        raise ValueError(f"image_size must be >= 64, got {spec.image_size}")
    if spec.num_volumes < 3:
        raise ValueError(f"num_volumes must be >= 3 (train, val and test), got {spec.num_volumes}")
    if len(spec.split_fractions) != 3 or abs(sum(spec.split_fractions) - 1) > 1e-6:
        raise ValueError(f"split_fractions must be three numbers summing to 1, got {spec.split_fractions}")
    out_dir = os.path.abspath(out_dir)
    present = [n for n in ("DL_info.csv", "Images_png") if os.path.lexists(os.path.join(out_dir, n))]
    if present:
        raise UserError(f"{out_dir} already holds {', '.join(present)}; expected a folder without a "
                        "DeepLesion release in it", field="out_dir")
    tmp = os.path.join(out_dir, PARTIAL_IMAGES)
    shutil.rmtree(tmp, ignore_errors=True)  # a killed run's leftover: this function's own folder
    os.makedirs(tmp)
    rows: List[List] = []
    volumes: Iterator[int] = iter(range(spec.num_volumes))
    if progress is not None:
        volumes = progress(volumes)
    for v in volumes:
        for name, slices, r in _series(spec, v):
            folder = os.path.join(tmp, name)
            os.makedirs(folder)
            for k, im in slices:
                png = np.clip(np.round(im) + HU_OFFSET, 0, 65535).astype(np.uint16)
                cv2.imwrite(os.path.join(folder, f"{k:03d}.png"), png)
            rows.extend(r)
    os.replace(tmp, os.path.join(out_dir, "Images_png"))
    return write_dl_info(os.path.join(out_dir, "DL_info.csv"), rows)
