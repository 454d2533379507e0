"""Run any 2D detector over every slice of a volume, the slice as key and its neighbours as context.

The detector is a plain callable (see :data:`Detector`); the driver prepares its input exactly as the
DeepLesion pipeline does for training (``LoadDeepLesionSlices`` then mmdet's keep-ratio ``Resize``):

1. the key slice and its neighbours, sampled as :func:`alignshift.data.deeplesion.load_multislice`
   samples them (the same neighbour plan: native neighbours or ``norm_interval`` mm apart, linear
   interpolation between the two nearest slices, the edge slice repeated past the volume's ends),
   or with ``sampler="v1"`` as the published loader did (``LoadDeepLesionSlicesV1``: the plan of
   :func:`alignshift.data.published.published_slice_plan`, whose interpolation weights are the first
   neighbour's for every neighbour), which the converted published snapshots were trained on;
2. :func:`alignshift.data.window` on the mixed HU (clip, then scale to [0, 255]);
3. a keep-ratio bilinear resize to fit ``img_scale`` (mmcv's ``imrescale`` rule).

Boxes come back in the resized image and are divided by the scale factor, as mmdet's
``rescale=True`` does, giving working-frame pixel coordinates of the slice (0-based; the DeepLesion
box convention, where a coordinate is a pixel index); a detector that takes the scale factor
rescales them itself, before its NMS (see :data:`Detector`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..data.deeplesion import DEFAULT_WINDOW, _neighbour_plan, _offset_weights, window

__all__ = ["Detector", "PreprocessConfig", "SAMPLERS", "neighbour_mix", "resize_keep_ratio", "prepare_slice",
           "run_detector", "sampling_notes"]

SAMPLERS = ("deeplesion", "v1")
"""``"deeplesion"``: :func:`alignshift.data.load_multislice`'s neighbour plan (this project's
training); ``"v1"``: the published loader's (``LoadDeepLesionSlicesV1``), for the converted
published snapshots."""

Detector = Callable[..., Sequence[np.ndarray]]
"""``detector(images: (B, D, H, W) float32 in [0, 255], thickness: (B,) mm) -> B arrays (N, 5)``
of ``x1, y1, x2, y2, score`` in the coordinates of ``images``. Normalisation (mean / std) is the
detector's business: an mmdet model does it in its data preprocessor.

A detector with a true attribute ``takes_scale_factor`` is called as ``detector(images, thickness,
scale_factors)``, ``scale_factors: (B, 2)`` the ``(x, y)`` factors from the slice's pixels to
``images`` (mmdet's ``scale_factor``), and returns its boxes in the slice's pixels: it rescales them
itself, before its own NMS, as mmdet's ``rescale=True`` does (which matters when the NMS counts box
sides as ``x2 - x1 + 1``: it is then not scale-invariant)."""


@dataclass(frozen=True)
class PreprocessConfig:
    """How slices become detector input; the values a config's dataset and test pipeline carry.

    Attributes:
        num_slices: odd number of slices per sample (key in the middle).
        norm_interval: mm between neighbour channels when resampling.
        interpolate: False keeps the native neighbours of series at least ``norm_interval`` thick
            (the AlignShift configs); True always resamples ``norm_interval`` apart. With
            ``sampler="v1"`` False is the published ``'alignshift'`` variant, True ``'tsm'`` (and
            ``'2.5d'``, whose plan is the same).
        window: HU clipped to ``(low, high)`` and scaled to [0, 255].
        img_scale: ``(long, short)`` bound of mmdet's keep-ratio Resize, or None for no resize.
        sampler: one of :data:`SAMPLERS`: how neighbours are mixed.

    The mean / std normalisation is not here: it belongs to the detector (an mmdet model's data
    preprocessor applies the config's, e.g. the published snapshots' mean 50 / std 1).
    """

    num_slices: int = 3
    norm_interval: float = 2.0
    interpolate: bool = False
    window: Tuple[float, float] = DEFAULT_WINDOW
    img_scale: Optional[Tuple[int, int]] = (512, 512)
    sampler: str = "deeplesion"

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if self.num_slices < 1 or self.num_slices % 2 == 0:
            raise ValueError(f"num_slices must be odd and >= 1, got {self.num_slices}")
        if not self.norm_interval > 0:
            raise ValueError(f"norm_interval must be > 0 mm, got {self.norm_interval}")


def neighbour_mix(key: int, num_volume_slices: int, slice_interval: float, cfg: PreprocessConfig
                  ) -> List[List[Tuple[int, float]]]:
    """For each output channel, the ``(slice index, weight)`` pairs that make it, summed in order.

    The offsets are :func:`alignshift.data.deeplesion.load_multislice`'s (``sampler="deeplesion"``)
    or :func:`alignshift.data.published.published_slice_plan`'s (``sampler="v1"``); an index past the
    volume's ends falls back to the edge slice, as a missing neighbour PNG falls back to the nearest
    one towards the key slice.
    """
    last = num_volume_slices - 1
    plan = _offset_plan(slice_interval, cfg)
    return [[(min(max(key + d, 0), last), w) for d, w in parts] for parts in plan]


def _offset_plan(slice_interval: float, cfg: PreprocessConfig) -> List[List[Tuple[int, float]]]:
    """Per output channel, the ``(offset from the key slice, weight)`` pairs."""
    if cfg.sampler == "v1":
        # imported here: alignshift.zoo's package imports torch, which the driver does not need
        from ..data.published import published_slice_plan

        variant = "tsm" if cfg.interpolate else "alignshift"
        return published_slice_plan(cfg.num_slices, slice_interval, cfg.norm_interval, variant)
    offsets = _neighbour_plan(cfg.num_slices, slice_interval, cfg.norm_interval, cfg.interpolate)
    return [_offset_weights(off) for off in offsets]


def sampling_notes(num_volume_slices: int, slice_interval: float, cfg: PreprocessConfig) -> List[str]:
    """What a user should know about the slice sampling of this scan: one note when the scan is too
    thin for the model's input (fewer slices than its neighbour plan reaches), else none."""
    plan = _offset_plan(slice_interval, cfg)
    reach = max(abs(d) for parts in plan for d, _ in parts)
    need = 2 * reach + 1
    if num_volume_slices >= need:
        return []
    return [f"the scan has {num_volume_slices} slices but the model's {cfg.num_slices}-slice input "
            f"reaches {reach} slices either side of the key slice at this {slice_interval:g} mm "
            f"interval ({need} slices): past the scan's ends the edge slice is repeated, as the "
            "DeepLesion loader repeats the last existing neighbour, so no key slice has its full context"]


def resize_keep_ratio(img: np.ndarray, scale: Tuple[int, int]) -> Tuple[np.ndarray, float]:
    """Bilinear keep-ratio resize to fit ``scale`` (mmcv ``imrescale``): img ``(H, W, D)``.

    Returns the resized image and the factor (new size = ``int(old * factor + 0.5)``).
    """
    h, w = img.shape[:2]
    long_edge, short_edge = max(scale), min(scale)
    factor = min(long_edge / max(h, w), short_edge / min(h, w))
    new_w, new_h = int(w * factor + 0.5), int(h * factor + 0.5)
    if (new_w, new_h) == (w, h):
        return img, 1.0
    out = cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    if out.ndim == 2:
        out = out[..., None]
    return out, factor


def prepare_slice(hu: np.ndarray, key: int, slice_interval: float, cfg: PreprocessConfig
                  ) -> Tuple[np.ndarray, Tuple[float, float]]:
    """Detector input for one key slice of ``hu: (S, R, C)``: ``(D, H', W')`` float32 in [0, 255].

    Returns the image and the ``(x, y)`` scale factors from the volume's pixels to it.
    """
    mix = neighbour_mix(key, hu.shape[0], slice_interval, cfg)
    if cfg.sampler == "v1":
        # the operations of alignshift.data.published.load_published_multislice, in its order, so that
        # the float32 sums are the same bit for bit
        chans = []
        for parts in mix:
            im = None
            for i, w in parts:
                term = hu[i] if w == 1.0 else hu[i] * np.float32(w)
                im = term if im is None else im + term
            chans.append(im)
        mixed = np.ascontiguousarray(np.stack(chans, -1), dtype=np.float32)
    else:
        mixed = np.zeros((*hu.shape[1:], cfg.num_slices), np.float32)  # (R, C, D), as the pipeline stacks
        for c, parts in enumerate(mix):
            for i, w in parts:
                if w == 1.0:
                    mixed[..., c] = hu[i]
                else:
                    mixed[..., c] += w * hu[i]
    img = window(mixed, cfg.window)
    sx = sy = 1.0
    if cfg.img_scale is not None:
        img, _ = resize_keep_ratio(img, cfg.img_scale)
        sy, sx = img.shape[0] / hu.shape[1], img.shape[1] / hu.shape[2]
    return np.ascontiguousarray(img.transpose(2, 0, 1)), (sx, sy)


def _batches(keys: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for i in range(0, len(keys), size):
        yield keys[i:i + size]


def run_detector(hu: np.ndarray, slice_interval: float, detector: Detector, cfg: PreprocessConfig,
                 slices: Optional[Sequence[int]] = None, batch_size: int = 4, progress: bool = True
                 ) -> List[np.ndarray]:
    """Detect on every key slice of ``hu: (S, R, C)``; boxes in the volume's pixels.

    Args:
        hu: the volume in HU (working frame).
        slice_interval: mm between slices, handed to the detector as ``thickness``.
        detector: see :data:`Detector`.
        cfg: how slices are prepared.
        slices: key slice indices to run (default all); neighbours come from the whole volume.
        batch_size: key slices per detector call.
        progress: show a tqdm progress bar (on stderr).

    Returns:
        one ``(N, 5)`` float32 array per entry of ``slices`` (``x1, y1, x2, y2, score``, score-sorted).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    keys = list(range(hu.shape[0])) if slices is None else [int(k) for k in slices]
    for k in keys:
        if not 0 <= k < hu.shape[0]:
            raise ValueError(f"slice {k} is outside the volume's 0..{hu.shape[0] - 1}")
    from tqdm import tqdm

    out: List[np.ndarray] = []
    with tqdm(total=len(keys), desc="slices", unit="slice", disable=not progress, leave=False) as bar:
        rescales = bool(getattr(detector, "takes_scale_factor", False))
        for batch in _batches(keys, batch_size):
            prepared = [prepare_slice(hu, k, slice_interval, cfg) for k in batch]
            images = np.stack([p[0] for p in prepared])
            thickness = np.full(len(batch), slice_interval, np.float64)
            if rescales:
                results = detector(images, thickness, np.array([p[1] for p in prepared], np.float64))
            else:
                results = detector(images, thickness)
            if len(results) != len(batch):
                raise RuntimeError(f"the detector returned {len(results)} results for {len(batch)} images")
            for (_, (sx, sy)), res in zip(prepared, results):
                res = np.asarray(res, np.float32).reshape(-1, 5).copy()
                if not rescales:
                    res[:, [0, 2]] /= sx
                    res[:, [1, 3]] /= sy
                out.append(res[np.argsort(-res[:, 4], kind="stable")])
            bar.update(len(batch))
    return out
