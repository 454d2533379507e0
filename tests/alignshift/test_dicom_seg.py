"""alignshift.inference.dicom_seg: candidates as a DICOM SEG on a synthetic CT series, read back."""

from __future__ import annotations

import random

import numpy as np
import pytest
import SimpleITK as sitk

from alignshift.errors import UserError
from alignshift.inference import PreprocessConfig, read_volume, result_from_detections

pydicom = pytest.importorskip("pydicom")
hd = pytest.importorskip("highdicom")

from alignshift.inference.dicom_seg import _overlaps, candidate_frames, write_dicom_seg  # noqa: E402

ROOT_UID = "1.2.826.0.1.3680043.10.511."
STUDY, SERIES, FOR = ROOT_UID + "1", ROOT_UID + "2", ROOT_UID + "3"


def write_ct_series(folder, pixels, iop, spacing=(0.8, 0.7), interval=2.5, origin=(-20.0, -30.0, 100.0)):
    """``pixels: (files, rows, cols)`` HU, file ``f`` at ``origin + f * interval * normal``; one CT
    Image Storage file each, named in shuffled order. Returns the SOP Instance UIDs by file index."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir()
    row, col = np.array(iop[:3], float), np.array(iop[3:], float)
    normal = np.cross(row, col)
    names = [f"IM{n:03d}" for n in range(len(pixels))]
    random.Random(1).shuffle(names)
    uids = []
    for f, im in enumerate(pixels):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = uid = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, uid
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = STUDY, SERIES, FOR
        ds.Modality, ds.Manufacturer, ds.PatientName, ds.PatientID = "CT", "phantom", "Phantom^Test", "P1"
        ds.PatientBirthDate, ds.PatientSex, ds.StudyDate, ds.StudyTime = "19700101", "O", "20260101", "120000"
        ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "1", "A1", ""
        ds.SeriesNumber, ds.InstanceNumber = 3, f + 1
        ds.ImagePositionPatient = [float(v) for v in np.array(origin) + f * interval * normal]
        ds.ImageOrientationPatient = [float(v) for v in iop]
        ds.PixelSpacing = [spacing[1], spacing[0]]  # row spacing, column spacing
        ds.SliceThickness = interval
        ds.Rows, ds.Columns = im.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.PixelData = (im.astype(np.int16) + 1024).astype(np.int16).tobytes()
        ds.save_as(folder / names[f], enforce_file_format=True)
        uids.append(uid)
    return uids


def perfect_detections(vol, values):
    """Per working-frame slice, one box (score by value order) around each lesion's voxels."""
    dets = []
    for k in range(vol.num_slices):
        boxes = []
        for n, v in enumerate(values):
            ys, xs = np.nonzero(vol.hu[k] == v)
            if len(xs):
                boxes.append([xs.min(), ys.min(), xs.max(), ys.max(), 0.9 - 0.1 * n])
        dets.append(np.array(boxes, np.float32).reshape(-1, 5))
    return result_from_detections(vol, range(vol.num_slices), dets, PreprocessConfig())


def read_frames(path):
    """The SEG's frames as {(segment number, referenced SOP Instance UID): mask (rows, cols)}."""
    seg = hd.seg.segread(str(path))
    pixels = seg.pixel_array.reshape(int(seg.NumberOfFrames), int(seg.Rows), int(seg.Columns))
    out = {}
    for n, item in enumerate(seg.PerFrameFunctionalGroupsSequence):
        segment = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        src = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        out[(segment, src)] = pixels[n].astype(bool)
    return seg, out


@pytest.mark.parametrize("iop", [(1, 0, 0, 0, 1, 0), (1, 0, 0, 0, -1, 0), (0, 1, 0, 0, 0, -1)],
                         ids=["axial", "rows-and-normal-flipped", "sagittal"])
def test_seg_frames_land_on_their_source_slices(tmp_path, iop):
    """Two lesions as cuboids in the files' own pixels; the second overlaps the first's box on one
    file (so the stacked-segments form is used) in the flipped series. In the sagittal series each
    working-frame (axial) slice crosses every file: the candidates' frames are unions of its boxes."""
    pixels = np.full((8, 24, 20), -1000.0)
    pixels[:, 2:22, 2:18] = 40
    les = {150.0: (slice(2, 5), slice(5, 10), slice(3, 9)),  # (files, rows, cols)
           300.0: (slice(4, 6), slice(12, 15), slice(11, 16))}
    if iop[4] < 0:
        les[300.0] = (slice(4, 6), slice(9, 15), slice(7, 16))  # touches lesion 1's box on file 4
    for v, (f, r, c) in les.items():
        pixels[f, r, c] = v
    uids = write_ct_series(tmp_path / "ct", pixels, iop)
    vol = read_volume(str(tmp_path / "ct"))
    assert vol.dicom_files is not None and len(vol.dicom_files) == 8
    files = vol.slice_files()  # working-frame slice -> file: reversed when the normal points down
    if iop[0] == 0:
        assert files is None
    else:
        order = [uids.index(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in files]
        assert order == (list(range(8)) if iop[4] > 0 else list(range(7, -1, -1)))
    result = perfect_detections(vol, list(les))
    assert len(result.lesions) == 2

    frames_in = candidate_frames(vol, result)
    assert _overlaps(frames_in, [1, 2]) == (iop[4] < 0)  # both ways of passing the segments are run
    info = write_dicom_seg(str(tmp_path / "seg.dcm"), vol, result, "alignshift_7slice")
    seg, frames = read_frames(tmp_path / "seg.dcm")
    assert (info.num_segments, info.num_frames) == (2, 3 + 2)
    expected = {}
    for n, (f, r, c) in enumerate(les.values(), start=1):
        for k in range(f.start, f.stop):
            m = np.zeros((24, 20), bool)
            m[r, c] = True
            expected[(n, uids[k])] = m
    assert sorted(frames) == sorted(expected)
    for key, m in expected.items():
        assert np.array_equal(frames[key], m), key
    # references and provenance
    assert (seg.StudyInstanceUID, seg.FrameOfReferenceUID) == (STUDY, FOR)
    (ref,) = seg.ReferencedSeriesSequence
    assert ref.SeriesInstanceUID == SERIES
    assert sorted(i.ReferencedSOPInstanceUID for i in ref.ReferencedInstanceSequence) == sorted(
        uids[k] for k in range(2, 6))
    desc = seg.SegmentSequence[0]
    assert desc.SegmentLabel == f"candidate 1 (score {result.lesions[0]['score']:.3f})"
    assert desc.SegmentAlgorithmType == "AUTOMATIC"
    assert desc.SegmentedPropertyTypeCodeSequence[0].CodeValue == "52988006"  # SCT Lesion
    algo = desc.SegmentationAlgorithmIdentificationSequence[0]
    import alignshift

    assert (algo.AlgorithmName, algo.AlgorithmVersion) == ("alignshift", alignshift.__version__)
    assert "alignshift_7slice" in algo.AlgorithmParameters
    assert seg.SoftwareVersions == alignshift.__version__ and seg.SegmentationType == "BINARY"


def test_seg_refuses_inputs_without_source_images(tmp_path):
    arr = np.full((4, 16, 16), -1000, np.int16)
    arr[1:3, 4:8, 4:8] = 100
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(tmp_path / "scan.nii.gz"))
    vol = read_volume(str(tmp_path / "scan.nii.gz"))
    result = perfect_detections(vol, [100.0])
    with pytest.raises(UserError) as err:
        write_dicom_seg(str(tmp_path / "seg.dcm"), vol, result, "m")
    msg = str(err.value)
    assert msg.endswith("a DICOM SEG references the images of a DICOM series; this scan is a NIfTI file")
    assert "\n" not in msg and "--" not in msg and not (tmp_path / "seg.dcm").exists()

    pixels = np.full((6, 16, 16), -1000.0)
    uids = write_ct_series(tmp_path / "ct", pixels, (1, 0, 0, 0, 1, 0))
    gap = tmp_path / "ct" / sorted(p.name for p in (tmp_path / "ct").iterdir()
                                   if pydicom.dcmread(p).SOPInstanceUID == uids[3])[0]
    gap.unlink()  # a missing slice: read only by interpolating
    vol = read_volume(str(tmp_path / "ct"), resample=True)
    with pytest.raises(UserError, match="resampled onto a uniform grid"):
        write_dicom_seg(str(tmp_path / "seg.dcm"), vol, perfect_detections(vol, [40.0]), "m")
    assert vol.slice_files() is None
    # a series with no candidate: a SEG needs a segment, so nothing is written
    pixels = np.full((3, 16, 16), -1000.0)
    write_ct_series(tmp_path / "ct2", pixels, (1, 0, 0, 0, 1, 0))
    vol = read_volume(str(tmp_path / "ct2"))
    assert write_dicom_seg(str(tmp_path / "seg.dcm"), vol, perfect_detections(vol, []), "m") is None
    assert not (tmp_path / "seg.dcm").exists()
