"""The slice sampling of the published code, so converted snapshots see the input they were trained on.

It differs from :func:`alignshift.data.deeplesion.load_multislice` in one place. Where a neighbour
falls between two real slices, the published loader mixes them with the weights of the *first*
neighbour's fractional position (``frac(norm_interval / slice_interval)``) for every neighbour,
not with each neighbour's own. Three-slice inputs are therefore the same; seven-slice inputs of
series whose interval does not divide 2 mm differ in their outer channels. The variants:

- ``'alignshift'``: series at least ``norm_interval`` thick keep their immediate neighbours (the
  operator aligns them); thinner ones are resampled.
- ``'tsm'`` and ``'2.5d'``: every series is resampled to ``norm_interval``.
"""

from __future__ import annotations

import math
import os
from typing import List, Tuple

import numpy as np

from .deeplesion import read_hu

__all__ = ["PUBLISHED_VARIANTS", "load_published_multislice", "published_slice_plan"]

PUBLISHED_VARIANTS = ("alignshift", "tsm", "2.5d")


def published_slice_plan(num_slices: int, slice_interval: float, norm_interval: float = 2.0,
                         variant: str = "alignshift") -> List[List[Tuple[int, float]]]:
    """Per output channel (lowest slice first), the ``(offset from the key slice, weight)`` pairs.

    Example: ``published_slice_plan(7, 1.25, 2.0, 'tsm')[0]`` is ``[(-5, 0.6), (-4, 0.4)]``
    (own weights would be 0.8 / 0.2 at offset 4.8).
    """
    if variant not in PUBLISHED_VARIANTS:
        raise ValueError(f"variant must be one of {PUBLISHED_VARIANTS}, got {variant!r}")
    if num_slices < 1 or num_slices % 2 == 0:
        raise ValueError(f"num_slices must be odd and >= 1, got {num_slices}")
    half = num_slices // 2
    if norm_interval == 0 or not (slice_interval > 0):  # also NaN: the key slice repeated
        return [[(0, 1.0)] for _ in range(num_slices)]
    rel = float(norm_interval) / float(slice_interval)
    a, b = rel - math.floor(rel), math.ceil(rel) - rel
    sides: List[List[Tuple[int, float]]] = []  # neighbour p = 0, 1, ... on the positive side
    for p in range(half):
        if variant == "alignshift" and rel <= 1.0:
            sides.append([(p + 1, 1.0)])
        elif a == 0:
            sides.append([(int(rel * (p + 1)), 1.0)])
        else:
            at = rel * (p + 1)
            sides.append([(int(math.ceil(at)), a), (int(math.floor(at)), b)])
    below = [[(-o, w) for o, w in s] for s in reversed(sides)]
    return [*below, [(0, 1.0)], *sides]


def load_published_multislice(image_dir: str, file_name: str, slice_interval: float, num_slices: int,
                              norm_interval: float = 2.0, variant: str = "alignshift") -> np.ndarray:
    """The key slice and its neighbours as float32 ``(H, W, num_slices)`` HU, sampled as published.

    A missing neighbour file falls back to the nearest existing one towards the key slice, as in
    the published loader (and :func:`alignshift.data.deeplesion.load_multislice`).
    """
    series, _, key_name = file_name.replace("\\", "/").rpartition("/")
    stem = os.path.splitext(key_name)[0]
    if not stem.isdigit():
        raise ValueError(f"{file_name}: expected <series>/<slice number>.png")
    key, width = int(stem), len(stem)
    cache = {}

    def path(offset: int) -> str:
        return os.path.join(image_dir, series, f"{key + offset:0{width}d}.png")

    def slice_at(offset: int) -> np.ndarray:
        while offset != 0 and not os.path.exists(path(offset)):
            offset -= 1 if offset > 0 else -1
        if offset not in cache:
            cache[offset] = read_hu(path(offset))
        return cache[offset]

    chans = []
    for parts in published_slice_plan(num_slices, slice_interval, norm_interval, variant):
        im = None
        for off, w in parts:
            term = slice_at(off) if w == 1.0 else slice_at(off) * np.float32(w)
            im = term if im is None else im + term
        chans.append(im)
    return np.ascontiguousarray(np.stack(chans, -1), dtype=np.float32)
