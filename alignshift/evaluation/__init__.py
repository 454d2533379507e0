"""DeepLesion FROC evaluation."""

from .froc import (
    AVG_FPS,
    DEFAULT_FPS,
    FROCCurve,
    box_iou,
    format_froc_table,
    froc,
    froc_breakdown,
    plot_froc,
    sens_at_fps,
)

__all__ = ["AVG_FPS", "DEFAULT_FPS", "FROCCurve", "box_iou", "format_froc_table", "froc",
           "froc_breakdown", "plot_froc", "sens_at_fps"]
