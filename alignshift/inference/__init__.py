"""Lesion detection on a user's own CT volume (NIfTI, NRRD, MHA, DICOM series), framework-free.

- :mod:`.volume`: SimpleITK reading, one consistent axial order (LPS), slice interval from slice
  positions, HU.
- :mod:`.driver`: any callable detector over every key slice with its neighbours, in batches.
- :mod:`.lesions`: 2D boxes -> 3D candidates with voxel and patient-mm extents.
- :mod:`.outputs`: ``detections.json``, ``lesions.csv``, overlays and the label volume.
- :mod:`.tta`: horizontal-flip test-time augmentation of any detector (the merge of mmdet's
  ``DetTTAModel``).

``tools/infer_volume.py`` wraps an mmdet detector built from a config
(``mmdet_plugins.inference``) as the callable.
"""

from ..errors import require

require("SimpleITK", "inference", "reading CT volumes (alignshift.inference)")

from .driver import Detector, PreprocessConfig, neighbour_mix, prepare_slice, resize_keep_ratio, run_detector
from .lesions import Candidate, describe_candidate, link_detections
from .outputs import (
                      CSV_COLUMNS,
                      FORMAT,
                      VolumeResult,
                      detect_volume,
                      mask_array,
                      mask_filename,
                      write_detections_json,
                      write_lesions_csv,
                      write_mask,
                      write_overlays,
)
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
    "CSV_COLUMNS", "Candidate", "Detector", "DicomSeries", "FORMAT", "PreprocessConfig", "Volume",
    "VolumeError", "VolumeResult", "WORKING_ORIENTATION", "describe_candidate",
    "detect_volume", "flip_tta", "label_image", "link_detections", "list_dicom_series", "mask_array",
    "mask_filename", "merge_flipped", "neighbour_mix", "prepare_slice", "read_volume",
    "resize_keep_ratio", "run_detector", "write_detections_json", "write_lesions_csv", "write_mask",
    "write_overlays",
]
