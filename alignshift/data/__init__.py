"""DeepLesion data: the CSV parser, the multi-slice loader and the synthetic generator."""

from .deeplesion import (
    DEFAULT_WINDOW,
    DL_INFO_COLUMNS,
    HU_OFFSET,
    SPLITS,
    THIN_MAX_MM,
    DLInfoError,
    ImageRecord,
    Lesion,
    annotation_xyxy,
    image_relpath,
    is_thin,
    load_multislice,
    missing_neighbours,
    multislice_plan,
    parse_dl_info,
    read_hu,
    records_to_coco,
    select_split,
    window,
)
from .synthetic import SyntheticSpec, make_synthetic_deeplesion

__all__ = ["DEFAULT_WINDOW", "DL_INFO_COLUMNS", "HU_OFFSET", "SPLITS", "THIN_MAX_MM", "DLInfoError",
           "ImageRecord", "Lesion", "annotation_xyxy", "image_relpath", "is_thin", "load_multislice",
           "make_synthetic_deeplesion", "missing_neighbours", "multislice_plan", "parse_dl_info",
           "read_hu", "records_to_coco", "select_split", "SyntheticSpec", "window"]
