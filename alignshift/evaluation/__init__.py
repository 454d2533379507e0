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
    save_froc_report,
    sens_at_fps,
    summarize,
)

__all__ = ["AVG_FPS", "DEFAULT_FPS", "FROCCurve", "box_iou", "format_froc_table", "froc",
           "froc_breakdown", "plot_froc", "save_froc_report", "sens_at_fps", "summarize"]
