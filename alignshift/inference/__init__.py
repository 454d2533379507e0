"""Lesion detection on a user's own CT volume (NIfTI, NRRD, MHA, DICOM series), framework-free.

- :mod:`.volume`: SimpleITK reading, one consistent axial order (LPS), slice interval from slice
  positions, HU.
- :mod:`.driver`: any callable detector over every key slice with its neighbours, in batches.
- :mod:`.pipeline`: a config's test dataset and pipeline -> the driver's ``PreprocessConfig``.
- :mod:`.lesions`: 2D boxes -> 3D candidates with voxel and patient-mm extents.
- :mod:`.outputs`: ``detections.json``, ``lesions.csv``, overlays and the label volume.
- :mod:`.tta`: horizontal-flip test-time augmentation of any detector (the merge of mmdet's
  ``DetTTAModel``).
- :mod:`.report`: the self-contained HTML report (slices, boxes, window presets, candidates).
- :mod:`.dicom_seg`: the candidates as a DICOM SEG on the source series (highdicom).
- :mod:`.phantom`: a CT-like phantom with known lesions, for examples, tests and benchmarks.

``tools/infer_volume.py`` wraps an mmdet detector built from a config
(``mmdet_plugins.inference``) as the callable.
"""

from ..errors import require

require("SimpleITK", "inference", "reading CT volumes (alignshift.inference)")

from .dicom_seg import DicomSegInfo, check_dicom_seg_source, write_dicom_seg
from .driver import (
                     SAMPLERS,
                     Detector,
                     PreprocessConfig,
                     neighbour_mix,
                     prepare_slice,
                     resize_keep_ratio,
                     run_detector,
                     sampling_notes,
)
from .lesions import Candidate, describe_candidate, link_detections
from .outputs import (
                      CSV_COLUMNS,
                      FORMAT,
                      VolumeResult,
                      detect_volume,
                      mask_array,
                      mask_filename,
                      result_from_detections,
                      write_detections_json,
                      write_lesions_csv,
                      write_mask,
                      write_overlays,
)
from .pipeline import KNOWN_TRANSFORMS, preprocess_from_test_pipeline
from .report import REPORT_MAX_BYTES, WINDOW_PRESETS, ReportInfo, write_report
from .tta import flip_tta, merge_flipped
from .volume import (
                      WORKING_ORIENTATION,
                      DicomSeries,
                      Volume,
                      VolumeError,
                      label_image,
                      list_dicom_series,
                      read_volume,
)

__all__ = [
    "CSV_COLUMNS", "Candidate", "Detector", "DicomSegInfo", "DicomSeries", "FORMAT", "KNOWN_TRANSFORMS",
    "PreprocessConfig", "REPORT_MAX_BYTES", "ReportInfo", "SAMPLERS", "Volume", "VolumeError", "VolumeResult",
    "WINDOW_PRESETS", "WORKING_ORIENTATION", "check_dicom_seg_source", "describe_candidate", "detect_volume",
    "flip_tta", "label_image",
    "link_detections", "list_dicom_series", "mask_array", "mask_filename", "merge_flipped", "neighbour_mix",
    "prepare_slice",
    "preprocess_from_test_pipeline", "read_volume", "resize_keep_ratio", "result_from_detections",
    "run_detector", "sampling_notes", "write_detections_json", "write_lesions_csv", "write_mask",
    "write_dicom_seg", "write_overlays", "write_report",
]
