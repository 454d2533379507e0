"""CT-like phantoms written in the exact DeepLesion release format, for the demo and the tests.

Each image is the key slice of its own series: a body with fat, soft tissue, lungs and a spine in
HU, 1-3 lesions (3D ellipsoids of varying size and contrast) and 1-3 distractors (vessels running
along z: a lesion-like disc in any one slice, but a tube in 3D). Half the series are thin
(0.625-2 mm), half thick (5 mm); some lack a slice, some end close to the key slice. RECIST
measurements come from each lesion's true cross-section on the key slice. Everything is
deterministic for a given seed.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import List, Tuple

import cv2
import numpy as np

from ..errors import UserError
from .deeplesion import HU_OFFSET, dl_info_row, write_dl_info

__all__ = ["PARTIAL_IMAGES", "SyntheticSpec", "make_synthetic_deeplesion"]

THIN_CHOICES = (0.625, 1.0, 1.25, 2.0)
THICK = 5.0
HALF_EXTENT_MM = 14.0  # each series covers the key slice +- this


@dataclass
class SyntheticSpec:
    num_images: int = 200
    image_size: int = 128
    seed: int = 0
    thick_fraction: float = 0.5
    noisy_fraction: float = 0.03


@dataclass
class _Blob:
    center: np.ndarray  # (x, y, z) in pixels, pixels, mm
    radii: np.ndarray  # (a, b) in pixels, c in mm
    theta: float
    hu: float  # HU inside the blob, whatever tissue it sits in


def _phantom(size: int, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray, dict]:
    """Base 2D anatomy in HU, where blobs may sit, and lung parameters that drift with z."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cx, cy = size / 2 + rng.uniform(-2, 2), size / 2 + rng.uniform(-2, 2)
    ax, ay = size * rng.uniform(0.40, 0.45), size * rng.uniform(0.30, 0.35)
    r_body = ((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2
    body = r_body <= 1
    im = np.full((size, size), -1000.0, np.float32)
    im[body] = -100.0  # subcutaneous fat
    inner = ((xx - cx) / (ax * 0.88)) ** 2 + ((yy - cy) / (ay * 0.85)) ** 2 <= 1
    im[inner] = 40.0  # soft tissue
    spine = (xx - cx) ** 2 + (yy - (cy + ay * 0.62)) ** 2 <= (size * 0.06) ** 2
    im[spine] = 700.0
    lungs = dict(cx=cx, cy=cy - ay * 0.2, dx=ax * 0.45, rx=ax * 0.27, ry=ay * 0.4,
                 drift=rng.uniform(-0.004, 0.004))
    near_spine = (xx - cx) ** 2 + (yy - (cy + ay * 0.62)) ** 2 <= (size * 0.12) ** 2
    return im, inner & ~near_spine, lungs


def _lung_mask(size: int, lungs: dict, z_mm: float) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    scale = 1.0 + lungs["drift"] * z_mm
    mask = np.zeros((size, size), bool)
    for side in (-1, 1):
        mask |= (((xx - lungs["cx"] - side * lungs["dx"]) / (lungs["rx"] * scale)) ** 2
                 + ((yy - lungs["cy"]) / (lungs["ry"] * scale)) ** 2) <= 1
    return mask


def _blob_value(b: _Blob, xx: np.ndarray, yy: np.ndarray, z_mm: float, tube: bool) -> np.ndarray:
    dx, dy = xx - b.center[0], yy - b.center[1]
    c, s = math.cos(b.theta), math.sin(b.theta)
    u, v = (dx * c + dy * s) / b.radii[0], (-dx * s + dy * c) / b.radii[1]
    r2 = u * u + v * v
    if not tube:
        r2 = r2 + ((z_mm - b.center[2]) / b.radii[2]) ** 2
    # blending weight with a smooth edge of about one pixel
    return 1.0 / (1.0 + np.exp((np.sqrt(r2) - 1.0) * 8.0))


def _recist(b: _Blob, z_mm: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """0-based RECIST (long then short axis endpoints), box padded by 5 px, diameters."""
    s = math.sqrt(max(0.0, 1.0 - ((z_mm - b.center[2]) / b.radii[2]) ** 2))
    a, bb = b.radii[0] * s, b.radii[1] * s
    c, sn = math.cos(b.theta), math.sin(b.theta)
    x, y = b.center[0], b.center[1]
    pts = np.array([x - a * c, y - a * sn, x + a * c, y + a * sn,
                    x + bb * sn, y - bb * c, x - bb * sn, y + bb * c])
    xs, ys = pts[0::2], pts[1::2]
    box = np.array([xs.min() - 5, ys.min() - 5, xs.max() + 5, ys.max() + 5])
    return pts, box, np.array([2 * a, 2 * bb])


def _place(rng: np.random.Generator, body: np.ndarray, taken: List[_Blob], r: float,
           size: int) -> Tuple[float, float]:
    ys, xs = np.nonzero(body)
    for _ in range(200):
        k = rng.integers(len(xs))
        x, y = float(xs[k]), float(ys[k])
        if not (r + 6 < x < size - r - 7 and r + 6 < y < size - r - 7):
            continue
        if all(math.hypot(x - t.center[0], y - t.center[1]) > r + t.radii[0] + 4 for t in taken):
            return x, y
    raise RuntimeError("could not place a lesion; use a larger image_size")


def _series(spec: SyntheticSpec, i: int):
    """Build one series: yields (slice index, HU image), and its CSV rows."""
    rng = np.random.default_rng([spec.seed, i])
    size = spec.image_size
    thick = rng.random() < spec.thick_fraction
    dz = THICK if thick else float(rng.choice(THIN_CHOICES))
    spacing_xy = rng.uniform(0.6, 0.9) * 512 / size
    n_half = int(round(HALF_EXTENT_MM / dz))
    first = int(rng.integers(1, 60))
    key = first + n_half
    lo, hi = first, first + 2 * n_half
    if rng.random() < 0.1:  # series ending close to the key slice: neighbours are missing
        hi = key + int(rng.integers(0, 2))
    missing = set()
    if rng.random() < 0.15 and hi - lo > 3:
        missing.add(int(rng.choice([k for k in range(lo + 1, hi) if k != key])))

    base, body, lungs = _phantom(size, rng)
    px = size / 128  # sizes below are in pixels of a 128-pixel image
    lesions: List[_Blob] = []
    for _ in range(int(rng.choice([1, 1, 2, 3]))):
        ra = rng.uniform(3.0, 9.0) * px
        rb = ra * rng.uniform(0.6, 1.0)
        rz = rng.uniform(5.0, 12.0)
        x, y = _place(rng, body, lesions, ra, size)
        hu = 40.0 + float(rng.choice([-1, 1, 1])) * rng.uniform(60, 160)
        lesions.append(_Blob(np.array([x, y, rng.uniform(-0.3, 0.3) * rz]),
                             np.array([ra, rb, rz]), rng.uniform(0, math.pi), hu))
    vessels: List[_Blob] = []
    for _ in range(int(rng.integers(1, 4))):
        r = rng.uniform(2.5, 6.0) * px
        x, y = _place(rng, body, lesions + vessels, r, size)
        vessels.append(_Blob(np.array([x, y, 0.0]), np.array([r, r * rng.uniform(0.8, 1.0), 1.0]),
                             rng.uniform(0, math.pi), 40.0 + rng.uniform(80, 160)))

    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)

    def slices():
        for k in range(lo, hi + 1):
            if k in missing:
                continue
            z = (k - key) * dz
            im = base.copy()
            im[_lung_mask(size, lungs, z)] = -850.0
            for b in lesions:
                im += _blob_value(b, xx, yy, z, tube=False) * (b.hu - im)
            for b in vessels:
                im += _blob_value(b, xx, yy, z, tube=True) * (b.hu - im)
            im += rng.normal(0, 12, im.shape).astype(np.float32)
            yield k, im

    patient, study, series = i // 2 + 1, i % 2 + 1, 1
    split = _split_of(spec.seed, patient)
    name = f"{patient:06d}_{study:02d}_{series:02d}"
    gender = "M" if rng.random() < 0.5 else "F"
    age = "NaN" if rng.random() < 0.05 else str(int(rng.integers(18, 90)))
    rows = []
    for b in lesions:
        pts, box, diam = _recist(b, 0.0)
        loc = [b.center[0] / size, b.center[1] / size, 0.5]
        ltype = -1 if split == 1 and rng.random() < 0.7 else int(rng.integers(1, 9))
        noisy = int(rng.random() < spec.noisy_fraction)
        rows.append(dl_info_row(f"{name}_{key:03d}.png", patient, study, series, key, pts, box, diam, loc,
                                ltype, noisy, (lo, hi), (spacing_xy, spacing_xy, dz), (size, size),
                                gender=gender, age=age, split=split))
    return name, slices(), rows


def _split_of(seed: int, patient: int) -> int:
    u = np.random.default_rng([seed, 10**6 + patient]).random()
    return 1 if u < 0.6 else (2 if u < 0.75 else 3)


_OUTPUTS = ("DL_info.csv", "Images_png")
PARTIAL_IMAGES = ".Images_png.partial"  # the images folder while it is being written


def make_synthetic_deeplesion(out_dir: str, num_images: int = 200, image_size: int = 128,
                              seed: int = 0, progress: bool = True) -> str:
    """Write ``out_dir/DL_info.csv`` and ``out_dir/Images_png/`` and return the CSV path.

    ``out_dir`` may be missing or hold anything but those two (and a leftover
    :data:`PARTIAL_IMAGES`): nothing already there is touched, and a folder that holds either is
    refused with :class:`~alignshift.errors.UserError`. The images are written into
    :data:`PARTIAL_IMAGES` and renamed into place, and ``DL_info.csv`` comes last, so a folder with
    a ``DL_info.csv`` is complete. (``tools/make_synthetic_deeplesion.py`` decides whether an earlier
    output may be replaced.)
    """
    if image_size < 64:
        raise ValueError(f"image_size must be >= 64, got {image_size}")
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}")
    spec = SyntheticSpec(num_images, image_size, seed)
    out_dir = os.path.abspath(out_dir)
    present = [n for n in (*_OUTPUTS, PARTIAL_IMAGES) if os.path.lexists(os.path.join(out_dir, n))]
    if present:
        raise UserError(f"{out_dir} already holds {', '.join(present)}; expected a folder without a "
                        "DeepLesion release in it", field="out_dir")
    tmp = os.path.join(out_dir, PARTIAL_IMAGES)
    images = os.path.join(out_dir, "Images_png")
    os.makedirs(tmp)
    rows = []
    it = range(num_images)
    if progress:
        from tqdm import tqdm
        it = tqdm(it, desc="synthetic DeepLesion", unit="image")
    for i in it:
        name, slices, r = _series(spec, i)
        folder = os.path.join(tmp, name)
        os.makedirs(folder)
        for k, im in slices:
            png = np.clip(np.round(im) + HU_OFFSET, 0, 65535).astype(np.uint16)
            cv2.imwrite(os.path.join(folder, f"{k:03d}.png"), png)
        rows.extend(r)
    os.replace(tmp, images)
    return write_dl_info(os.path.join(out_dir, "DL_info.csv"), rows)
