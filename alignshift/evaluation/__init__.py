"""DeepLesion FROC evaluation and the published figures."""

from .froc import (
    AVG_FPS,
    DEFAULT_FPS,
    FROCCurve,
    format_froc_table,
    froc,
    froc_breakdown,
    plot_froc,
    save_froc_report,
    sens_at_fps,
    summarize,
)
from .paper import compare_with_paper, paper_results, paper_variant
from .predictions import (
    PREDICTIONS_FORMAT,
    ImagePredictions,
    PredictionsError,
    join_ground_truth,
    parse_predictions,
    read_ground_truth,
    read_predictions,
    write_predictions,
)

__all__ = ["AVG_FPS", "DEFAULT_FPS", "FROCCurve", "ImagePredictions", "PREDICTIONS_FORMAT",
           "PredictionsError", "compare_with_paper", "format_froc_table", "froc",
           "froc_breakdown", "join_ground_truth", "paper_results", "paper_variant", "parse_predictions",
           "plot_froc", "read_ground_truth", "read_predictions", "save_froc_report", "sens_at_fps",
           "summarize", "write_predictions"]
