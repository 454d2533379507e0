"""Lesion candidates as a DICOM Segmentation (SEG) object on the source series, built with highdicom.

**One segment per candidate.** Segment ``n`` is candidate ``n`` (``lesion_id``, by decreasing score):
its label carries the score, its tracking ID the candidate's number, and its frames are the
candidate's boxes, filled, on each source slice it spans. The alternative, one "lesion candidate"
segment with the candidates as frames, cannot keep two candidates apart where they share a slice (a
segment has one frame per source image), and a viewer would list, colour and hide them together; with
one segment each, a reader toggles, colours and reports each candidate on its own, and the segment
number is the candidate number of ``lesions.csv``, ``detections.json`` and the HTML report.

The object is a BINARY segmentation of the series' own slices: each frame references its source image
(SOP Instance UID) and shares the series' study, frame of reference, pixel spacing, orientation and
positions; only the source images the candidates touch are referenced. Its segments are marked as
automatic, the output of the algorithm ``alignshift`` (its version, and the model's name as a
parameter) of the family "Artificial Intelligence".

Frames are in the source files' own pixel grid whatever the series' orientation: working-frame voxels
are mapped to the files' ``(column, row, file)`` indices through the image geometry.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..errors import UserError, require
from ..fileio import atomic_path
from ..version import __version__
from .outputs import VolumeResult
from .volume import Volume

__all__ = ["ALGORITHM_NAME", "DicomSegInfo", "candidate_frames", "check_dicom_seg_source", "write_dicom_seg"]

ALGORITHM_NAME = "alignshift"


@dataclass
class DicomSegInfo:
    """What :func:`write_dicom_seg` wrote."""

    path: str
    series_instance_uid: str
    sop_instance_uid: str
    num_segments: int
    num_frames: int
    referenced_files: List[str]  # the source files the frames reference, in the series' order


Rects = Dict[int, List[Tuple[int, int, int, int]]]  # input slice k -> rectangles (i1, j1, i2, j2)


def candidate_frames(volume: Volume, result: VolumeResult) -> Dict[int, Rects]:
    """For each candidate (``lesion_id``), the input slices it covers and the filled rectangles there.

    Each per-slice box (working-frame pixels) is rounded to whole voxels as :func:`mask_array` rounds
    it, clipped to the image, and mapped to the input's ``(i, j, k)`` indices: returns
    ``{lesion_id: {k: [(i1, j1, i2, j2), ...]}}`` with inclusive ends (``i`` a column, ``j`` a row of
    file ``k``).
    """
    _, rows, cols = volume.hu.shape
    out: Dict[int, Rects] = {}
    for les in result.lesions:
        frames: Rects = {}
        for s in les["slices"]:
            x1, y1, x2, y2 = s["box"]
            c1, c2 = max(int(round(x1)), 0), min(int(round(x2)), cols - 1)
            r1, r2 = max(int(round(y1)), 0), min(int(round(y2)), rows - 1)
            if c2 < c1 or r2 < r1:
                continue
            ijk = volume.working_to_input_index(np.array([[c1, r1, s["slice"]], [c2, r2, s["slice"]]], float))
            lo, hi = ijk.min(0), ijk.max(0)
            for k in range(int(lo[2]), int(hi[2]) + 1):  # > 1 file when the series is not axial
                frames.setdefault(k, []).append((int(lo[0]), int(lo[1]), int(hi[0]), int(hi[1])))
        out[int(les["lesion_id"])] = frames
    return out


def _source_kind(volume: Volume) -> str:
    low = volume.source.lower()
    for ext, kind in ((".nii.gz", "NIfTI"), (".nii", "NIfTI"), (".nrrd", "NRRD"), (".mha", "MetaImage"),
                      (".mhd", "MetaImage")):
        if low.endswith(ext):
            return f"a {kind} file"
    return "a file" if os.path.isfile(volume.source) else "not a DICOM series"


def check_dicom_seg_source(volume: Volume) -> None:
    """Raise :class:`UserError` (``field="dicom_seg"``) unless a DICOM SEG can be written on ``volume``:
    it must be read from a DICOM series of single-frame images, not resampled. Cheap: call it before
    a long detection run."""
    if volume.dicom_files is None:
        raise UserError(f"{volume.source}: a DICOM SEG references the images of a DICOM series; this scan "
                        f"is {_source_kind(volume)}", field="dicom_seg")
    if volume.resampled:
        raise UserError(f"{volume.source}: the series was resampled onto a uniform grid, so its slices are "
                        "not the source images a DICOM SEG must lie on", field="dicom_seg")
    if len(volume.dicom_files) != volume.input_size[2]:
        raise UserError(f"{volume.dicom_files[0]}: a multi-frame DICOM file; a DICOM SEG is written for "
                        "series of single-frame images", field="dicom_seg")


def write_dicom_seg(path: str, volume: Volume, result: VolumeResult, model_name: str, *,
                    series_number: int = 9901, series_description: str = "alignshift lesion candidates"
                    ) -> Optional[DicomSegInfo]:
    """Write the candidates of ``result`` as a DICOM SEG on the DICOM series ``volume`` was read from.

    Args:
        path: the ``.dcm`` file (written, then renamed).
        volume: read from a DICOM series of single-frame images (:func:`alignshift.inference.read_volume`).
        result: :func:`alignshift.inference.detect_volume`'s result; one segment per candidate.
        model_name: the algorithm's ``model`` parameter, the SEG's manufacturer model name and content
            description.
        series_number, series_description: of the new SEG series.

    Returns:
        a :class:`DicomSegInfo`, or None when there is no candidate (a SEG needs a segment):
        nothing is written then.

    Raises:
        UserError: the scan is not a DICOM series of single-frame images, was resampled, or its
            files cannot be read; one line naming the scan or file.
    """
    check_dicom_seg_source(volume)
    if not result.lesions:
        return None
    require("highdicom", "inference", "writing a DICOM SEG")
    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes

    frames = candidate_frames(volume, result)
    touched = sorted({k for f in frames.values() for k in f})
    ids = [int(les["lesion_id"]) for les in result.lesions if frames[int(les["lesion_id"])]]
    if not touched:
        return None
    sources = []
    for k in touched:
        f = volume.dicom_files[k]
        try:
            sources.append(pydicom.dcmread(f, stop_before_pixels=True))
        except Exception as err:  # any unreadable file is the user's input
            raise UserError(f"{f}: cannot read the DICOM header: {err}") from None
    cols, rows = int(sources[0].Columns), int(sources[0].Rows)
    if (cols, rows) != tuple(volume.input_size[:2]):
        raise UserError(f"{volume.dicom_files[touched[0]]}: {cols} x {rows} pixels, but the series was read "
                        f"as {volume.input_size[0]} x {volume.input_size[1]}")
    row_of = {k: n for n, k in enumerate(touched)}
    overlap = _overlaps(frames, ids)
    if overlap:  # stacked segments: one boolean plane per candidate
        pixels = np.zeros((len(touched), rows, cols, len(ids)), np.uint8)
    else:  # a label map: the same SEG, without the per-segment planes in memory
        pixels = np.zeros((len(touched), rows, cols), np.uint16)
    for seg_no, lid in enumerate(ids, start=1):
        for k, rects in frames[lid].items():
            for i1, j1, i2, j2 in rects:
                if overlap:
                    pixels[row_of[k], j1:j2 + 1, i1:i2 + 1, seg_no - 1] = 1
                else:
                    pixels[row_of[k], j1:j2 + 1, i1:i2 + 1] = seg_no
    algorithm = hd.AlgorithmIdentificationSequence(
        name=ALGORITHM_NAME, family=codes.cid7162.ArtificialIntelligence, version=__version__,
        parameters={"model": str(model_name), "score_threshold": f"{result.score_thr:g}",
                    "link_iou_threshold": f"{result.link_iou_thr:g}"})
    scores = {int(les["lesion_id"]): float(les["score"]) for les in result.lesions}
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=n, segment_label=f"candidate {lid} (score {scores[lid]:.3f})",
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.Lesion,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algorithm,
            tracking_uid=hd.UID(), tracking_id=f"candidate {lid}")
        for n, lid in enumerate(ids, start=1)]
    try:
        seg = hd.seg.Segmentation(
            source_images=sources, pixel_array=pixels, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=series_number,
            sop_instance_uid=hd.UID(), instance_number=1, manufacturer="alignshift",
            manufacturer_model_name=str(model_name)[:64], software_versions=__version__,
            device_serial_number="none", content_label="CANDIDATES",
            content_description=f"lesion candidates (boxes) of {model_name}"[:64],
            series_description=series_description)
    except (ValueError, AttributeError, TypeError) as err:  # the source headers lack what a SEG needs
        raise UserError(f"{volume.source}: cannot build a DICOM SEG on this series: {err}") from None
    with atomic_path(path, suffix=".dcm") as tmp:
        seg.save_as(tmp)
    return DicomSegInfo(path=path, series_instance_uid=str(seg.SeriesInstanceUID),
                        sop_instance_uid=str(seg.SOPInstanceUID), num_segments=len(ids),
                        num_frames=int(seg.NumberOfFrames),
                        referenced_files=[volume.dicom_files[k] for k in touched])


def _overlaps(frames: Dict[int, Rects], ids: List[int]) -> bool:
    """Whether two candidates' rectangles share a pixel on some slice."""
    by_slice: Dict[int, List[Tuple[int, Tuple[int, int, int, int]]]] = {}
    for lid in ids:
        for k, rects in frames[lid].items():
            by_slice.setdefault(k, []).extend((lid, r) for r in rects)
    for rects in by_slice.values():
        for a in range(len(rects)):
            for b in range(a + 1, len(rects)):
                (la, (ai1, aj1, ai2, aj2)), (lb, (bi1, bj1, bi2, bj2)) = rects[a], rects[b]
                if la != lb and ai1 <= bi2 and bi1 <= ai2 and aj1 <= bj2 and bj1 <= aj2:
                    return True
    return False
