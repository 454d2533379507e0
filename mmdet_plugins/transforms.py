"""Pipeline transforms: multi-slice loading and a box-aware shift-scale-rotate."""

from __future__ import annotations

from typing import Optional, Sequence

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS

from alignshift.data import DEFAULT_WINDOW, load_multislice, window


@TRANSFORMS.register_module()
class LoadDeepLesionSlices(BaseTransform):
    """Load the key slice and its neighbours, window them, stack the slices as channels.

    Reads ``img_path`` (``<Images_png>/<series>/<slice>.png``), ``thickness`` and the dataset's
    ``num_slices``, ``norm_interval``, ``interpolate`` and ``window`` from the sample; arguments
    given here override them. Adds ``img``: float32 (H, W, D) in [0, 255], ``img_shape``,
    ``ori_shape``.
    """

    def __init__(self, num_slices: Optional[int] = None, norm_interval: Optional[float] = None,
                 interpolate: Optional[bool] = None, window: Optional[Sequence[float]] = None) -> None:
        self.overrides = dict(num_slices=num_slices, norm_interval=norm_interval,
                              interpolate=interpolate, window=window)

    def _opt(self, results: dict, key: str, default):
        val = self.overrides[key]
        return val if val is not None else results.get(key, default)

    def _load_hu(self, results: dict, image_dir: str, file_name: str):
        """The slices in HU, ``(H, W, D)``."""
        return load_multislice(image_dir, file_name, float(results["thickness"]),
                               int(self._opt(results, "num_slices", 7)),
                               float(self._opt(results, "norm_interval", 2.0)),
                               bool(self._opt(results, "interpolate", True)))

    def transform(self, results: dict) -> dict:
        path = results["img_path"].replace("\\", "/")
        image_dir, series, name = path.rsplit("/", 2)
        hu = self._load_hu(results, image_dir, f"{series}/{name}")
        img = window(hu, tuple(self._opt(results, "window", DEFAULT_WINDOW)))
        results["img"] = img
        results["img_shape"] = img.shape[:2]
        results["ori_shape"] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.overrides})"


@TRANSFORMS.register_module()
class RandomShiftScaleRotate(BaseTransform):
    """Random shift, scale and rotation of every slice alike, with the boxes transformed.

    Boxes become the axis-aligned hull of their transformed corners. A draw that would push a
    box outside the image is redrawn (up to ``max_tries``, else the sample is left unchanged), so
    no lesion is ever dropped or cut. ``interpolation`` ('bilinear' or 'bicubic') and ``border``
    ('constant' zeros or 'reflect_101') choose the resampling; the published recipe used
    albumentations' ``ShiftScaleRotate`` with bicubic and reflect-101.
    """

    _INTERPOLATIONS = {"bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}
    _BORDERS = {"constant": cv2.BORDER_CONSTANT, "reflect_101": cv2.BORDER_REFLECT_101}

    def __init__(self, shift_limit: float = 0.0625, scale_limit: float = 0.1,
                 rotate_limit: float = 15.0, prob: float = 0.5, max_tries: int = 10,
                 interpolation: str = "bilinear", border: str = "constant") -> None:
        self.shift_limit, self.scale_limit, self.rotate_limit = shift_limit, scale_limit, rotate_limit
        self.prob, self.max_tries = prob, max_tries
        if interpolation not in self._INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {sorted(self._INTERPOLATIONS)}, "
                             f"got {interpolation!r}")
        if border not in self._BORDERS:
            raise ValueError(f"border must be one of {sorted(self._BORDERS)}, got {border!r}")
        self.interpolation, self.border = interpolation, border

    def _matrix(self, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
        angle = rng.uniform(-self.rotate_limit, self.rotate_limit)
        scale = 1.0 + rng.uniform(-self.scale_limit, self.scale_limit)
        dx, dy = rng.uniform(-self.shift_limit, self.shift_limit, 2) * (w, h)
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
        m[:, 2] += (dx, dy)
        return m

    @staticmethod
    def _project(boxes: np.ndarray, m: np.ndarray) -> np.ndarray:
        x1, y1, x2, y2 = boxes.T
        corners = np.stack([np.stack([x1, y1]), np.stack([x2, y1]), np.stack([x1, y2]),
                            np.stack([x2, y2])])  # (4, 2, N)
        pts = np.einsum("ij,kjn->kin", m[:, :2], corners) + m[:, 2:3]
        return np.stack([pts[:, 0].min(0), pts[:, 1].min(0), pts[:, 0].max(0),
                         pts[:, 1].max(0)], axis=1)

    def transform(self, results: dict) -> dict:
        rng = np.random.default_rng(np.random.randint(0, 2**31 - 1))  # follows np's global seed
        if rng.random() >= self.prob:
            return results
        img = results["img"]
        h, w = img.shape[:2]
        boxes = results["gt_bboxes"].numpy() if "gt_bboxes" in results else np.zeros((0, 4))
        for _ in range(self.max_tries):
            m = self._matrix(h, w, rng)
            new = self._project(boxes, m) if len(boxes) else boxes
            if len(new) == 0 or (new[:, :2].min() >= 0 and new[:, 2].max() <= w
                                 and new[:, 3].max() <= h):
                break
        else:
            return results
        chans = [cv2.warpAffine(np.ascontiguousarray(img[..., i:i + 4]), m, (w, h),
                                flags=self._INTERPOLATIONS[self.interpolation],
                                borderMode=self._BORDERS[self.border], borderValue=0)
                 for i in range(0, img.shape[2], 4)]
        chans = [c[..., None] if c.ndim == 2 else c for c in chans]
        results["img"] = np.concatenate(chans, axis=2).astype(img.dtype, copy=False)
        if len(boxes):
            results["gt_bboxes"] = type(results["gt_bboxes"])(new.astype(np.float32))
        return results

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(shift_limit={self.shift_limit}, scale_limit="
                f"{self.scale_limit}, rotate_limit={self.rotate_limit}, prob={self.prob}, "
                f"interpolation={self.interpolation!r}, border={self.border!r})")


