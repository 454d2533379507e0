"""DeepLesion FROC evaluation and the published figures."""

from .bootstrap import paired_p_value, patient_resamples, percentile_interval, weighted_sensitivity
from .breakdown import (
    GROUPINGS,
    LESION_TYPES,
    Estimate,
    FROCReport,
    evaluate,
    evaluate_file,
    make_groupings,
    parse_breakdown,
    plot_breakdown,
    save_report,
)
from .compare import Comparison, Difference, compare, compare_files, save_comparison
from .evalset import EvalSet, load_evalset
from .froc import (
    AVG_FPS,
    DEFAULT_FPS,
    MP3D_AVG_FPS,
    FROCCurve,
    Matches,
    box_overlap,
    format_froc_table,
    froc,
    froc_breakdown,
    match_detections,
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
from .protocol import FROCProtocol

__all__ = ["AVG_FPS", "DEFAULT_FPS", "GROUPINGS", "LESION_TYPES", "MP3D_AVG_FPS", "PREDICTIONS_FORMAT",
           "box_overlap", "compare", "compare_files", "compare_with_paper", "Comparison",
           "Difference", "Estimate", "EvalSet", "evaluate", "evaluate_file", "format_froc_table", "froc",
           "froc_breakdown", "FROCCurve", "FROCProtocol", "FROCReport", "ImagePredictions",
           "join_ground_truth", "load_evalset", "make_groupings", "match_detections", "Matches",
           "paired_p_value", "paper_results", "paper_variant", "parse_breakdown", "parse_predictions",
           "patient_resamples", "percentile_interval", "plot_breakdown", "plot_froc", "PredictionsError",
           "read_ground_truth", "read_predictions", "save_comparison", "save_froc_report", "save_report",
           "sens_at_fps", "summarize", "weighted_sensitivity", "write_predictions"]
