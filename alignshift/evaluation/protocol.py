"""The options of the FROC protocol that published DeepLesion figures differ in, named in every report.

- **Noisy lesions**: ``"excluded"`` (default, as published: lesions DL_info.csv marks
  ``Possibly_noisy`` count neither as hits nor as misses, and an image whose lesions are all noisy
  leaves the test set) or ``"kept"``.
- **Hit criterion**: ``"iou"`` (default: intersection over union >= ``iou_thr``, 0.5) or ``"iobb"``
  (intersection over the *detected* box's area, the criterion of NIH's reference evaluation code
  for DeepLesion, ``IOBB``).
- **Avg.**: ``"0.5-4"`` (default, the paper's summary: mean sensitivity at 0.5, 1, 2 and 4 FPs per
  image) or ``"mp3d"`` (MP3D's six-point mean at 0.5, 1, 2, 3, 4 and 8 FPs per image).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Tuple

from .froc import AVG_FPS, CRITERIA, DEFAULT_FPS, MP3D_AVG_FPS

__all__ = ["FROCProtocol", "AVG_CHOICES", "NOISY_CHOICES", "CRITERIA"]

AVG_CHOICES = {"0.5-4": tuple(float(f) for f in AVG_FPS), "mp3d": tuple(float(f) for f in MP3D_AVG_FPS)}
NOISY_CHOICES = ("excluded", "kept")


def _rates(text: str) -> str:
    return ", ".join(f"{f:g}" for f in AVG_CHOICES[text])


@dataclass(frozen=True)
class FROCProtocol:
    """How hits, false positives and the summary are counted.

    Attributes:
        noisy: ``"excluded"`` or ``"kept"`` (see the module docstring).
        criterion: ``"iou"`` or ``"iobb"``.
        iou_thr: the overlap a hit needs, in (0, 1].
        avg: ``"0.5-4"`` or ``"mp3d"``: the FP rates Avg. is the mean over.
        fps: the FP rates reported in the tables.
        inclusive: the published inclusive-pixel box convention (``w = x2 - x1 + 1``).
    """

    noisy: str = "excluded"
    criterion: str = "iou"
    iou_thr: float = 0.5
    avg: str = "0.5-4"
    fps: Tuple[float, ...] = tuple(float(f) for f in DEFAULT_FPS)
    inclusive: bool = True

    def __post_init__(self) -> None:
        if self.noisy not in NOISY_CHOICES:
            raise ValueError(f"noisy must be one of {list(NOISY_CHOICES)}, got {self.noisy!r}")
        if self.criterion not in CRITERIA:
            raise ValueError(f"criterion must be one of {list(CRITERIA)}, got {self.criterion!r}")
        if not 0 < self.iou_thr <= 1:  # also catches NaN
            raise ValueError(f"iou_thr must be in (0, 1], got {self.iou_thr}")
        if self.avg not in AVG_CHOICES:
            raise ValueError(f"avg must be one of {list(AVG_CHOICES)}, got {self.avg!r}")
        fps = tuple(float(f) for f in self.fps)
        if not fps or not all(math.isfinite(f) and f > 0 for f in fps):
            raise ValueError(f"fps must be FP rates > 0, got {self.fps}")
        object.__setattr__(self, "fps", fps)

    @property
    def avg_fps(self) -> Tuple[float, ...]:
        """The FP rates Avg. is the mean over."""
        return AVG_CHOICES[self.avg]

    @property
    def rates(self) -> Tuple[float, ...]:
        """Every FP rate evaluated: the reported ones, then those only Avg. needs."""
        return self.fps + tuple(f for f in self.avg_fps if f not in self.fps)

    @property
    def avg_label(self) -> str:
        return "Avg." if self.avg == "0.5-4" else "Avg.(MP3D)"

    def describe(self) -> str:
        """One line naming every option, for the header of each table."""
        noisy = ("noisy lesions excluded (as published)" if self.noisy == "excluded"
                 else "noisy lesions kept")
        what = ("IoU" if self.criterion == "iou" else "IoBB (intersection over the detected box)")
        pixels = "inclusive pixels" if self.inclusive else "continuous coordinates"
        avg = f"mean sensitivity at {_rates(self.avg)} FPs per image"
        avg += " (as published)" if self.avg == "0.5-4" else " (MP3D's six-point mean)"
        return f"protocol: {noisy}; hit: {what} >= {self.iou_thr:g} ({pixels}); {self.avg_label} = {avg}"

    def to_dict(self) -> dict:
        return dict(noisy_lesions=self.noisy, criterion=self.criterion, iou_thr=self.iou_thr,
                    inclusive=self.inclusive, avg=self.avg, avg_fps=list(self.avg_fps),
                    fps=list(self.fps), description=self.describe())
