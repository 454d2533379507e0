"""A CT-like phantom volume with known lesions, for examples, tests and benchmarks of volume inference.

Not a model of anatomy: enough structure and noise that images compress as a CT scan does and look
like one in a report. From the feet (slice 0) to the head: pelvis and abdomen (fat, muscle, liver,
kidneys, bowel gas), then the thorax (lungs with vessels, heart, ribs), over a spine with discs and
an aorta; ellipsoid lesions in the liver, lungs and soft tissue. Arrays are in the working frame of
:mod:`alignshift.inference.volume`: ``(S, R, C)``, rows towards posterior, columns towards the
patient's left, slices towards the head.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, List, Tuple

import cv2
import numpy as np
import SimpleITK as sitk

if TYPE_CHECKING:
    from .driver import PreprocessConfig
    from .outputs import VolumeResult
    from .volume import Volume

__all__ = ["ct_phantom", "phantom_image", "phantom_result", "write_dicom_series"]


def _ellipse(xx: np.ndarray, yy: np.ndarray, cx: float, cy: float, ax: float, ay: float) -> np.ndarray:
    return ((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2 <= 1.0


def ct_phantom(num_slices: int = 300, size: int = 512, pixel_mm: float = 0.7, interval_mm: float = 2.5,
               noise_hu: float = 12.0, num_lesions: int = 8, seed: int = 0
               ) -> Tuple[np.ndarray, List[dict]]:
    """A phantom ``hu: (num_slices, size, size)`` int16 in HU and its lesions.

    Args:
        num_slices, size: the volume's shape.
        pixel_mm, interval_mm: pixel size and slice interval, for the anatomy's sizes in mm.
        noise_hu: standard deviation of the image noise, correlated over about a pixel as
            reconstructed CT noise is (0 for none).
        num_lesions: ellipsoid lesions placed in the liver, lungs and soft tissue.
        seed: for the lesions, vessels and noise.

    Returns:
        the HU array and one dict per lesion: ``center`` ``(x, y, slice)`` voxels, ``radii_mm``
        ``(x, y, z)``, ``hu``, ``kind``, ``slice_boxes`` ``{slice: [x1, y1, x2, y2]}`` (the box of its
        cross-section on each slice it crosses), ``box`` (on its centre slice) and ``slices``
        ``(first, last)``, inclusive.
    """
    rng = np.random.default_rng(seed)
    u = size / 512.0  # the anatomy fills the field of view: its sizes are in 1/512 of it
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    cx, cy = size / 2, size * 0.52
    z_mm = np.arange(num_slices) * interval_mm
    thorax_from = 0.55 * num_slices * interval_mm  # the diaphragm
    vessels = [(rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(1.0, 3.5)) for _ in range(90)]
    lesions: List[dict] = []
    for i in range(num_lesions):
        kind = ("liver", "lung", "soft")[i % 3]
        for _ in range(50):  # a place clear of the lesions before (10 mm between surfaces)
            r = rng.uniform(4.0, 15.0)  # mm
            if kind == "lung":
                top = max(z_mm[-1] - 20, thorax_from + 30)
                z = rng.uniform(thorax_from + 30, top)
                side = rng.choice([-1, 1])
                x, y = cx + side * (95 + rng.uniform(-25, 25)) * u, cy + rng.uniform(-40, 40) * u
                hu = 30.0
            elif kind == "liver":
                z = rng.uniform(0.35, 0.52) * num_slices * interval_mm
                x, y = cx - (70 + rng.uniform(-20, 20)) * u, cy + rng.uniform(-30, 20) * u
                hu = float(rng.choice([15.0, 110.0]))
            else:  # the anterior abdominal or chest wall
                z = rng.uniform(0.1, 0.9) * num_slices * interval_mm
                ang = rng.uniform(np.pi + 0.4, 2 * np.pi - 0.4)
                x, y = cx + 120 * u * np.cos(ang), cy + 70 * u * np.sin(ang)
                hu = 80.0
            radii = (r, r * rng.uniform(0.7, 1.0), r * rng.uniform(0.7, 1.2))
            clear = all(np.hypot(np.hypot((x - o["center"][0]) * pixel_mm, (y - o["center"][1]) * pixel_mm),
                                 z - o["center"][2] * interval_mm) > max(radii) + max(o["radii_mm"]) + 10
                        for o in lesions)
            if clear:
                break
        lesions.append(dict(center=(float(x), float(y), float(z / interval_mm)), radii_mm=radii, hu=hu,
                            kind=kind))

    out = np.empty((num_slices, size, size), np.int16)
    for k, z in enumerate(z_mm):
        thorax = z >= thorax_from
        ax, ay = (200 if thorax else 185) * u, (135 if thorax else 125) * u
        im = np.full((size, size), -1000.0, np.float32)
        body = _ellipse(xx, yy, cx, cy, ax, ay)
        im[body] = -100.0  # fat
        inner = _ellipse(xx, yy, cx, cy, ax - 14 * u, ay - 12 * u)
        im[inner] = 45.0  # muscle and organs
        spine_y = cy + ay - 45 * u
        if thorax:
            for side in (-1, 1):
                lung = _ellipse(xx, yy, cx + side * 95 * u, cy - 5 * u, 70 * u, 95 * u)
                im[lung] = -850.0
            for vx, vy, vr in vessels:
                px, py = cx + vx * 150 * u, cy - 5 * u + vy * 90 * u
                if im[int(np.clip(py, 0, size - 1)), int(np.clip(px, 0, size - 1))] < -500:
                    im[_ellipse(xx, yy, px, py, vr * u, vr * u)] = 30.0
            im[_ellipse(xx, yy, cx + 15 * u, cy - 15 * u, 55 * u, 45 * u)] = 40.0  # heart
            for a in np.linspace(0, 2 * np.pi, 22, endpoint=False):
                if np.sin(a) < 0.85:  # not over the spine
                    rx, ry = cx + (ax - 20 * u) * np.cos(a), cy + (ay - 18 * u) * np.sin(a)
                    im[_ellipse(xx, yy, rx, ry, 5 * u, 4 * u)] = 700.0  # ribs
        else:
            im[_ellipse(xx, yy, cx - 70 * u, cy - 10 * u, 85 * u, 70 * u)] = 60.0  # liver
            for side in (-1, 1):
                kidney = _ellipse(xx, yy, cx + side * 60 * u, spine_y - 10 * u, 22 * u, 30 * u)
                im[kidney] = 35.0
            for _ in range(3):  # bowel gas
                gx, gy = cx + rng.uniform(10, 90) * u, cy + rng.uniform(-60, 20) * u
                im[_ellipse(xx, yy, gx, gy, rng.uniform(3, 9) * u, rng.uniform(3, 7) * u)] = -950.0
        im[_ellipse(xx, yy, cx + 20 * u, spine_y - 40 * u, 12 * u, 12 * u)] = 180.0  # aorta
        disc = (z % 30.0) < 5.0
        im[_ellipse(xx, yy, cx, spine_y, 24 * u, 20 * u)] = 700.0  # vertebral body
        im[_ellipse(xx, yy, cx, spine_y, 20 * u, 16 * u)] = 80.0 if disc else 250.0
        im[_ellipse(xx, yy, cx, spine_y + 30 * u, 8 * u, 8 * u)] = 20.0  # spinal canal
        for les in lesions:
            x, y, zc = les["center"]
            rx, ry, rz = les["radii_mm"]
            dz = (k - zc) * interval_mm / rz
            if abs(dz) < 1:
                f = np.sqrt(1 - dz * dz)
                im[_ellipse(xx, yy, x, y, rx / pixel_mm * f, ry / pixel_mm * f)] = les["hu"]
        im = cv2.GaussianBlur(im, (0, 0), 0.6)  # partial volume at edges
        if noise_hu > 0:
            n = cv2.GaussianBlur(rng.standard_normal((size, size)).astype(np.float32), (0, 0), 0.7)
            im += n * (noise_hu / max(float(n.std()), 1e-6))
        out[k] = np.clip(np.round(im), -1024, 3071).astype(np.int16)

    for les in lesions:
        x, y, zc = les["center"]
        rx, ry, rz = les["radii_mm"]
        boxes = {}
        for k in range(num_slices):
            dz = (k - zc) * interval_mm / rz
            if abs(dz) < 1:
                f = np.sqrt(1 - dz * dz)
                px, py = rx / pixel_mm * f, ry / pixel_mm * f
                boxes[k] = [float(np.floor(x - px)), float(np.floor(y - py)), float(np.ceil(x + px)),
                            float(np.ceil(y + py))]
        les["slice_boxes"] = boxes
        les["slices"] = (min(boxes), max(boxes)) if boxes else (int(round(zc)), int(round(zc)))
        les["box"] = boxes.get(int(round(zc)), next(iter(boxes.values()), [x, y, x, y]))
    return out, lesions


def phantom_image(hu: np.ndarray, pixel_mm: float = 0.7, interval_mm: float = 2.5,
                  origin: Tuple[float, float, float] = (-179.0, -160.0, -400.0)) -> sitk.Image:
    """``hu: (S, R, C)`` as an LPS SimpleITK image (identity direction), ready to write as NIfTI / NRRD."""
    img = sitk.GetImageFromArray(hu)
    img.SetSpacing((pixel_mm, pixel_mm, interval_mm))
    img.SetOrigin(origin)
    return img


def phantom_result(volume: Volume, lesions: list, cfg: PreprocessConfig) -> VolumeResult:
    """The candidates of the phantom's lesions: each lesion's box on the slices where its cross-section
    is at least a quarter of its largest (a detector misses the tips), scored highest on its centre."""
    from .outputs import result_from_detections

    keys = list(range(volume.num_slices))
    per_slice = [[] for _ in keys]
    for i, les in enumerate(lesions):
        zc = les["center"][2]
        area = {k: (b[2] - b[0] + 1) * (b[3] - b[1] + 1) for k, b in les["slice_boxes"].items()}
        for k, box in les["slice_boxes"].items():
            if area[k] >= 0.25 * max(area.values()):
                per_slice[k].append([*box, 0.95 - 0.03 * i - 0.05 * abs(k - zc)])
    return result_from_detections(volume, keys, [np.array(d, np.float32).reshape(-1, 5) for d in per_slice],
                                  cfg)


def write_dicom_series(folder: str, hu: np.ndarray, pixel_mm: Tuple[float, float] = (0.7, 0.7),
                       interval_mm: float = 2.5,
                       origin: Tuple[float, float, float] = (-179.0, -160.0, -400.0),
                       description: str = "phantom") -> List[str]:
    """``hu: (S, R, C)`` as an axial CT series, one CT Image Storage file per slice, in the new ``folder``.

    Slice ``k`` lies at ``origin + k * interval_mm`` along +z (ImageOrientationPatient ``1\\0\\0\\0\\1\\0``,
    so the working frame is ``hu`` as given); stored values are ``hu + 1024`` with RescaleIntercept
    -1024. ``pixel_mm`` is ``(column, row)`` spacing. One study, series and frame of reference, with
    the patient and study attributes a DICOM SEG on the series needs. Returns the files in slice order.
    """
    from ..errors import require

    require("pydicom", "inference", "writing a DICOM series")
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    os.makedirs(folder)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    files = []
    for k, im in enumerate(np.asarray(hu)):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = uid = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, uid
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.Modality, ds.Manufacturer, ds.PatientName, ds.PatientID = "CT", "phantom", "Phantom", "PHANTOM"
        ds.PatientBirthDate, ds.PatientSex, ds.StudyDate, ds.StudyTime = "", "O", "20260101", "120000"
        ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "1", "", ""
        ds.SeriesNumber, ds.InstanceNumber, ds.SeriesDescription = 1, k + 1, description
        ds.ImagePositionPatient = [float(origin[0]), float(origin[1]), float(origin[2] + k * interval_mm)]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [float(pixel_mm[1]), float(pixel_mm[0])]  # row spacing, column spacing
        ds.SliceThickness = float(interval_mm)
        ds.Rows, ds.Columns = im.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.PixelData = (np.round(im).astype(np.int32) + 1024).astype(np.int16).tobytes()
        path = os.path.join(folder, f"CT{k + 1:04d}.dcm")
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return files
