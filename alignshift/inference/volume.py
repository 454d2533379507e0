"""Reading a CT volume from a file or a DICOM series folder, in one consistent axial order.

Geometry conventions (the *working frame*):

- The volume is the input image reoriented with ``SimpleITK.DICOMOrient(image, "LPS")``: a pure
  permutation / flip of the voxel axes, no interpolation. As a numpy array ``hu: (S, R, C)``
  (slices, rows, columns): the column index increases towards the patient's **L**\\ eft, the row
  index towards **P**\\ osterior, the slice index towards **S**\\ uperior. An axial slice thus shows
  the patient as radiologists (and the DeepLesion PNGs) do: anterior at the top, the patient's
  right on the image's left. A volume acquired at an oblique angle keeps its small residual
  rotation in the direction matrix; every mm coordinate goes through the image's own geometry.
- A voxel coordinate ``(x, y, slice)`` is an ITK *continuous index* (the centre of voxel ``i`` is at
  ``i``), so ``TransformContinuousIndexToPhysicalPoint`` maps it to patient LPS mm.
- The slice interval (this project's *thickness*) is the distance between slice positions along
  the slice normal, never the DICOM ``SliceThickness`` tag.
- Intensities are HU: DICOM stored values go through each file's RescaleSlope / RescaleIntercept
  (SimpleITK's GDCM reader applies them), NIfTI through ``scl_slope`` / ``scl_inter``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
import SimpleITK as sitk

from ..errors import UserError

__all__ = [
    "VolumeError", "Volume", "DicomSeries", "list_dicom_series", "read_volume", "WORKING_ORIENTATION",
    "UNIFORM_TOL_MM", "UNIFORM_TOL_REL", "label_image",
]

WORKING_ORIENTATION = "LPS"
# Slice intervals may differ by this much (absolute mm, or relative to the median) and still be
# one uniform spacing: headers round positions to ~1e-3 mm, and scanners jitter a little.
UNIFORM_TOL_MM = 0.01
UNIFORM_TOL_REL = 0.01

_TAG_IPP, _TAG_IOP = "0020|0032", "0020|0037"
_TAG_UID, _TAG_DESC, _TAG_SLOPE, _TAG_INTERCEPT = "0020|000e", "0008|103e", "0028|1053", "0028|1052"


class VolumeError(UserError):
    """The volume cannot be used as it is; the message names the file and what was expected."""


@dataclass
class DicomSeries:
    """One series found in a folder: its UID, files (unsorted) and description."""

    uid: str
    files: List[str]
    description: str = ""


@dataclass
class Volume:
    """A CT volume in the working frame (see the module docstring).

    Attributes:
        hu: float32 ``(S, R, C)`` in HU.
        image: the working-frame geometry (origin, spacing, direction) on a one-voxel SimpleITK
            image, for ``TransformContinuousIndexToPhysicalPoint``; ``hu`` holds the voxels.
        input_reference: the input's own geometry, likewise on a one-voxel image: what a label
            volume written for the user must share. After ``resample`` it is the resampled grid.
        input_size: the input's size in its own index order ``(i, j, k)``.
        input_orientation: the input's DICOM orientation code (e.g. ``"LPS"``, ``"RAS"``).
        slice_interval: mm between slices (the detector's ``thickness``).
        spacing: ``(col, row, slice)`` mm of the working frame.
        source: what was read (file or folder).
        series_uid: the DICOM SeriesInstanceUID (None for files).
        notes: what the reader did that a user should know (resampling, raw-looking values...).
        dicom_files: for a DICOM series, its files in the input's slice order (input index ``k``:
            sorted along the slice normal); None for other inputs.
        resampled: True when a DICOM series was interpolated onto a uniform grid, whose slices are
            then not the files' slices.
    """

    hu: np.ndarray
    image: sitk.Image
    input_reference: sitk.Image
    input_orientation: str
    input_size: Tuple[int, int, int]
    slice_interval: float
    spacing: Tuple[float, float, float]
    source: str
    series_uid: Optional[str] = None
    rescale: Optional[Dict[str, float]] = None
    notes: List[str] = field(default_factory=list)
    dicom_files: Optional[List[str]] = None
    resampled: bool = False

    @property
    def num_slices(self) -> int:
        return int(self.hu.shape[0])

    def index_to_lps(self, points: np.ndarray) -> np.ndarray:
        """Working-frame continuous indices ``(N, 3)`` as ``(x, y, slice)`` -> LPS mm ``(N, 3)``."""
        pts = np.asarray(points, np.float64).reshape(-1, 3)
        return np.array([self.image.TransformContinuousIndexToPhysicalPoint([float(v) for v in p])
                         for p in pts], np.float64).reshape(-1, 3)

    def working_to_input_index(self, points: np.ndarray) -> np.ndarray:
        """Working-frame voxel indices ``(N, 3)`` as ``(x, y, slice)`` -> the input's integer indices
        ``(N, 3)`` as ``(i, j, k)`` (the reorientation is a permutation and flip of the axes)."""
        return np.rint(self.lps_to_input_index(self.index_to_lps(points))).astype(np.int64)

    def slice_files(self) -> Optional[List[str]]:
        """The DICOM file of each working-frame slice, or None when the slices are not the files'
        slices (not a DICOM series, resampled, one multi-frame file, or acquired other than axially
        so that the working frame's axial slices cut across the files)."""
        if self.dicom_files is None or self.resampled or len(self.dicom_files) != self.input_size[2]:
            return None
        rows, cols = self.hu.shape[1:]
        corners = np.array([[x, y, s] for s in (0, self.num_slices - 1) for x in (0, cols - 1)
                            for y in (0, rows - 1)], np.float64)
        k = self.working_to_input_index(corners)[:, 2]
        if len(set(k[:4])) != 1 or len(set(k[4:])) != 1:
            return None
        first, last = int(k[0]), int(k[4])
        step = 1 if last >= first else -1
        return [self.dicom_files[first + step * s] for s in range(self.num_slices)]

    def lps_to_input_index(self, points: np.ndarray) -> np.ndarray:
        """LPS mm ``(N, 3)`` -> continuous indices ``(N, 3)`` in the input file's own index order."""
        pts = np.asarray(points, np.float64).reshape(-1, 3)
        ref = self.input_reference
        return np.array([ref.TransformPhysicalPointToContinuousIndex([float(v) for v in p])
                         for p in pts], np.float64).reshape(-1, 3)

    def geometry(self) -> dict:
        """The working and input geometry, JSON-ready."""
        def geo(im: sitk.Image) -> dict:
            return dict(origin=list(im.GetOrigin()), spacing=list(im.GetSpacing()),
                        direction=list(im.GetDirection()))
        size = [int(self.hu.shape[2]), int(self.hu.shape[1]), int(self.hu.shape[0])]
        return dict(working_frame=dict(orientation=WORKING_ORIENTATION, size=size, **geo(self.image)),
                    input=dict(orientation=self.input_orientation, size=list(self.input_size),
                               **geo(self.input_reference)),
                    slice_interval_mm=self.slice_interval)


def _first_line(err: Exception) -> str:
    """ITK exceptions span many lines; keep the sentence that says what went wrong."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    for ln in lines:
        if ln.lower().startswith(("description:", "itk::error")):
            return ln.split(":", 1)[1].strip() if ln.lower().startswith("description:") else ln
    return lines[-1] if lines else type(err).__name__


def list_dicom_series(folder: str) -> List[DicomSeries]:
    """The DICOM series directly inside ``folder`` (not its sub-folders), by SeriesInstanceUID."""
    reader = sitk.ImageSeriesReader()
    out = []
    for uid in reader.GetGDCMSeriesIDs(folder):
        files = list(reader.GetGDCMSeriesFileNames(folder, uid))
        desc = ""
        info = sitk.ImageFileReader()
        info.SetFileName(files[0])
        try:
            info.ReadImageInformation()
            if info.HasMetaDataKey(_TAG_DESC):
                desc = info.GetMetaData(_TAG_DESC).strip()
        except RuntimeError:
            pass
        out.append(DicomSeries(uid=uid, files=files, description=desc))
    return out


def _floats_tag(reader: sitk.ImageFileReader, tag: str, n: int, path: str, name: str) -> np.ndarray:
    if not reader.HasMetaDataKey(tag):
        raise VolumeError(f"{path}: the DICOM file has no {name} ({tag}); cannot place the slice")
    try:
        vals = np.array([float(v) for v in reader.GetMetaData(tag).strip().split("\\")], np.float64)
    except ValueError:
        raise VolumeError(f"{path}: {name} ({tag}) is not {n} numbers: "
                          f"{reader.GetMetaData(tag)!r}") from None
    if vals.size != n:
        raise VolumeError(f"{path}: {name} ({tag}) has {vals.size} values, expected {n}")
    return vals


def _read_dicom_series(folder: str, series: Optional[str], resample: bool) -> Tuple[sitk.Image, dict]:
    found = list_dicom_series(folder)
    if not found:
        subdirs = [d for d in sorted(os.listdir(folder)) if os.path.isdir(os.path.join(folder, d))]
        hint = (f"; it has sub-folders ({', '.join(subdirs[:3])}{' ...' if len(subdirs) > 3 else ''}): "
                "point at the one holding the series") if subdirs else ""
        raise VolumeError(f"{folder} holds no DICOM series (looked for DICOM files directly inside "
                          f"it){hint}")
    if series is None:
        if len(found) > 1:
            listing = "; ".join(f"{s.uid} ({len(s.files)} files" + (f", {s.description})" if s.description
                                                                   else ")") for s in found)
            raise VolumeError(f"{folder} holds {len(found)} DICOM series; choose one by its "
                              f"SeriesInstanceUID: {listing}", field="series")
        chosen = found[0]
    else:
        match = [s for s in found if s.uid == series]
        if not match:
            raise VolumeError(f"{folder} has no DICOM series {series}; it holds "
                              f"{', '.join(s.uid for s in found)}")
        chosen = match[0]
    files = chosen.files
    if len(files) == 1:  # a multi-frame file holds the whole volume; a single slice is 2D
        img = _read_file(files[0])
        return img, dict(series_uid=chosen.uid, notes=[], rescale=None, files=list(files))

    # Place every slice by its own header: position along the normal of the first slice's plane.
    headers = []
    for path in files:
        r = sitk.ImageFileReader()
        r.SetFileName(path)
        try:
            r.ReadImageInformation()
        except RuntimeError as err:
            raise VolumeError(f"{path}: cannot read the DICOM header: {_first_line(err)}") from None
        ipp = _floats_tag(r, _TAG_IPP, 3, path, "ImagePositionPatient")
        iop = _floats_tag(r, _TAG_IOP, 6, path, "ImageOrientationPatient")
        rescale = tuple(r.GetMetaData(tag).strip() if r.HasMetaDataKey(tag) else default
                        for tag, default in ((_TAG_SLOPE, "1"), (_TAG_INTERCEPT, "0")))
        headers.append((path, ipp, iop, r.GetSize()[:2], rescale))
    iop0 = headers[0][2]
    row_dir, col_dir = iop0[:3], iop0[3:]
    normal = np.cross(row_dir, col_dir)
    for path, _, iop, size, _ in headers:
        if np.abs(iop - iop0).max() > 1e-3:
            raise VolumeError(f"{path}: ImageOrientationPatient {list(iop)} differs from the series' "
                              f"{list(iop0)}; the slices are not one stack")
        if size != headers[0][3]:
            raise VolumeError(f"{path}: slice size {size} differs from the series' {headers[0][3]}")
    pos = np.array([h[1] for h in headers])
    depth = pos @ normal
    order = np.argsort(depth, kind="stable")
    headers = [headers[i] for i in order]
    pos, depth = pos[order], depth[order]
    gaps = np.diff(depth)
    if np.any(gaps < UNIFORM_TOL_MM):
        i = int(np.argmin(gaps))
        raise VolumeError(f"series {chosen.uid}: {headers[i][0]} and {headers[i + 1][0]} lie at the same "
                          f"position ({depth[i]:.3f} mm along the slice normal); the folder mixes "
                          "several acquisitions of one series")
    # gantry tilt: slices displaced within their plane as well as along the normal
    lateral = (pos - pos[0]) - np.outer(depth - depth[0], normal)
    if np.abs(lateral).max() > max(UNIFORM_TOL_MM, UNIFORM_TOL_REL * np.median(gaps)):
        raise VolumeError(f"series {chosen.uid}: slice positions move within the slice plane "
                          f"(gantry tilt, up to {np.abs(lateral).max():.2f} mm); tilted series are not "
                          "supported")
    interval = float(np.median(gaps))
    uniform = np.abs(gaps - interval).max() <= max(UNIFORM_TOL_MM, UNIFORM_TOL_REL * interval)

    slices, slopes = [], {h[4] for h in headers}
    for path, *_ in headers:
        try:
            im = sitk.ReadImage(path)
        except RuntimeError as err:
            raise VolumeError(f"{path}: cannot read the DICOM pixels: {_first_line(err)}") from None
        if im.GetNumberOfComponentsPerPixel() != 1:
            raise VolumeError(f"{path}: {im.GetNumberOfComponentsPerPixel()}-channel pixels; expected "
                              "grey CT values")
        slices.append(sitk.GetArrayViewFromImage(im).reshape(im.GetSize()[1], im.GetSize()[0])
                      .astype(np.float32))
        pixel_spacing = im.GetSpacing()[:2]
    arr = np.stack(slices)  # (S, R, C), sorted along the normal
    notes = []
    if not uniform:
        if not resample:
            worst = int(np.argmax(np.abs(gaps - interval)))
            raise VolumeError(
                f"series {chosen.uid}: slice intervals are not uniform (median {interval:.3f} mm, "
                f"{gaps[worst]:.3f} mm between {headers[worst][0]} and {headers[worst + 1][0]}; "
                f"{int(np.sum(np.abs(gaps - interval) > max(UNIFORM_TOL_MM, UNIFORM_TOL_REL * interval)))}"
                " irregular gaps: missing or uneven slices); resampling interpolates it onto a "
                f"uniform {interval:.3f} mm grid", field="resample")
        n = int(np.floor((depth[-1] - depth[0]) / interval + 1e-6)) + 1
        target = depth[0] + interval * np.arange(n)
        hi = np.clip(np.searchsorted(depth, target, side="right"), 1, len(depth) - 1)
        lo = hi - 1
        w = ((target - depth[lo]) / (depth[hi] - depth[lo])).astype(np.float32)[:, None, None]
        arr = arr[lo] * (1 - w) + arr[hi] * w
        notes.append(f"resampled {len(depth)} slices with non-uniform intervals ({gaps.min():.3f}-"
                     f"{gaps.max():.3f} mm) onto {n} slices {interval:.3f} mm apart (linear along the "
                     "normal); the label volume uses this grid")
    img = sitk.GetImageFromArray(arr.astype(np.float32))
    img.SetSpacing((float(pixel_spacing[0]), float(pixel_spacing[1]), interval))
    img.SetOrigin(tuple(float(v) for v in pos[0]))
    img.SetDirection(tuple(float(v) for v in np.stack([row_dir, col_dir, normal], axis=1).reshape(-1)))
    rescale = None
    if len(slopes) == 1:
        s, i = next(iter(slopes))
        try:
            rescale = dict(slope=float(s), intercept=float(i))
        except ValueError:
            rescale = None
    return img, dict(series_uid=chosen.uid, notes=notes, rescale=rescale, uniform=uniform,
                     files=[h[0] for h in headers], resampled=not uniform)


def _geometry_only(img: sitk.Image) -> sitk.Image:
    out = sitk.Image([1] * img.GetDimension(), sitk.sitkUInt8)
    out.SetOrigin(img.GetOrigin())
    out.SetSpacing(img.GetSpacing())
    out.SetDirection(img.GetDirection())
    return out


def _read_file(path: str) -> sitk.Image:
    try:
        return sitk.ReadImage(path)
    except RuntimeError as err:
        raise VolumeError(f"{path}: cannot read it as an image ({_first_line(err)}); expected a CT volume "
                          "(.nii, .nii.gz, .nrrd, .mha, .mhd) or a folder holding a DICOM series") from None


def read_volume(path: str, series: Optional[str] = None, resample: bool = False) -> Volume:
    """Read a CT volume, reorient it to the working frame and convert it to HU.

    Args:
        path: a file SimpleITK reads (``.nii``, ``.nii.gz``, ``.nrrd``, ``.mha``, ...) or a folder
            holding a DICOM series (its files, not sub-folders).
        series: SeriesInstanceUID to read when the folder holds several.
        resample: interpolate a DICOM series with uneven slice positions onto a uniform grid (the
            median interval) instead of raising.

    Returns:
        the :class:`Volume`: ``hu (S, R, C)`` float32, its working-frame and input geometry.

    Raises:
        VolumeError: missing path, unreadable or 2D image, empty folder, several series without
            ``series``, uneven slices without ``resample``; one line naming the file.
    """
    if not os.path.exists(path):
        raise VolumeError(f"{path} does not exist; expected a CT volume file or a DICOM series folder")
    info: dict = dict(series_uid=None, notes=[], rescale=None)
    if os.path.isdir(path):
        img, info = _read_dicom_series(path, series, resample)
    else:
        if series is not None:
            raise VolumeError(f"series {series} applies to a DICOM folder; {path} is a file")
        img = _read_file(path)
    if img.GetNumberOfComponentsPerPixel() != 1:
        raise VolumeError(f"{path}: {img.GetNumberOfComponentsPerPixel()}-channel pixels; expected grey CT "
                          "values")
    size = img.GetSize()
    if img.GetDimension() == 4 and size[3] == 1:
        img = img[:, :, :, 0]
        size = img.GetSize()
    if img.GetDimension() != 3 or min(size) < 2:
        shape = " x ".join(str(s) for s in size)
        what = f"a {img.GetDimension()}D image of {shape} voxels"
        if img.GetDimension() == 3 and sum(v == 1 for v in size) == 1:
            what = "a single slice of " + " x ".join(str(v) for v in size if v > 1) + " pixels"
        raise VolumeError(f"{path}: {what}; expected a 3D CT volume with at least 2 slices")
    input_orientation = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(img.GetDirection())
    input_reference = _geometry_only(img)
    work = sitk.DICOMOrient(img, WORKING_ORIENTATION)
    hu = sitk.GetArrayFromImage(work).astype(np.float32, copy=False)  # (S, R, C)
    geometry = _geometry_only(work)
    spacing = tuple(float(v) for v in work.GetSpacing())
    del img, work
    notes = list(info.get("notes", []))
    if hu.size and float(hu.min()) >= 0:
        notes.append(f"the lowest value is {float(hu.min()):.0f} (>= 0): these may be raw stored values, "
                     "not HU (air is about -1000 HU); check the file's rescale intercept")
    return Volume(hu=hu, image=geometry, input_reference=input_reference,
                  input_orientation=input_orientation, input_size=tuple(int(v) for v in size),
                  slice_interval=spacing[2], spacing=spacing,
                  source=os.path.abspath(path), series_uid=info.get("series_uid"),
                  rescale=info.get("rescale"), notes=notes,
                  dicom_files=[os.path.abspath(f) for f in info["files"]] if info.get("files") else None,
                  resampled=bool(info.get("resampled", False)))


def label_image(volume: Volume, labels: np.ndarray) -> sitk.Image:
    """A working-frame label array ``(S, R, C)`` as an image in the input's own geometry.

    The working frame is a permutation / flip of the input's axes, so reorienting back is exact;
    the geometry is then copied from the input so that origin, spacing and direction match bit for bit.
    """
    if labels.shape != volume.hu.shape:
        raise ValueError(f"labels {labels.shape} do not match the volume {volume.hu.shape}")
    lab = sitk.GetImageFromArray(labels)
    lab.SetOrigin(volume.image.GetOrigin())
    lab.SetSpacing(volume.image.GetSpacing())
    lab.SetDirection(volume.image.GetDirection())
    back = sitk.DICOMOrient(lab, volume.input_orientation)
    if tuple(back.GetSize()) != tuple(volume.input_size):
        raise RuntimeError(f"reorienting the labels back gave size {back.GetSize()}, expected "
                           f"{volume.input_size}")
    back.SetOrigin(volume.input_reference.GetOrigin())
    back.SetSpacing(volume.input_reference.GetSpacing())
    back.SetDirection(volume.input_reference.GetDirection())
    return back
