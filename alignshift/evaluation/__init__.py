"""DeepLesion FROC evaluation and the published figures."""

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
from .paper import compare_with_paper, paper_results, paper_variant

__all__ = ["AVG_FPS", "DEFAULT_FPS", "FROCCurve", "box_iou", "compare_with_paper", "format_froc_table",
           "froc", "froc_breakdown", "paper_results", "paper_variant", "plot_froc", "save_froc_report",
           "sens_at_fps", "summarize"]
