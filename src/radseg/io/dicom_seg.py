"""DICOM Segmentation (SEG) objects through highdicom: for a CT/MR series and for a radiograph.

The SEG references the source instances it was drawn on, carries one segment per label
with coded anatomy where radseg knows the structure (SNOMED CT codes from pydicom's code
dictionary, laterality as a type modifier), and stores the original label value in each
segment's tracking ID so reading it back restores the same label map.

Radiographs (CR/DX) lack attributes a SEG needs (frame of reference, plane position,
slice thickness): radseg gives highdicom the pixel measures from the image's spacing and
places the single frame in a new frame of reference, as the standard allows for
projection images. Sources must be on the same grid as the labels: a series read with
gap or tilt resampling has no one-to-one source slice and is refused.

Sources whose UIDs were blanked (anonymised exports such as TotalSegmentator's example CT
have empty Study/Series/SOP Instance UIDs and SOP Class UID) are not refused: the position of
every frame is still defined by the frame of reference and plane positions, and a SEG that
cannot be written at all helps nobody. radseg fills the empty ones in memory (the source files
are not touched): the SOP Class and Instance UIDs from the file meta header when it has them,
the others made deterministically with ``pydicom.uid.generate_uid(entropy_srcs=...)`` from the
SHA-256 of each source file's bytes, so writing the same series again references the same
UIDs. A ``UserWarning`` and the SEG's Image Comments say which were made up: such a SEG
references instances by UIDs the archive does not know, so a PACS will not link the two.

Reading accepts SEGs without pixel measures (highdicom's own radiograph SEGs have an empty
shared functional group): the label map then has 1-pixel spacing with ``spacing_known`` False.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from radseg.errors import ReadError, WriteError
from radseg.image import Image
from radseg.io.atomic import atomic_path
from radseg.labels import to_class_stack

# Class-name words -> pydicom SNOMED CT code names. Longest phrase wins.
_ANATOMY = {
    "femoral head": "FemoralHead", "head of femur": "FemoralHead", "fem": "Femur", "femur": "Femur",
    "tibia": "Tibia", "fibula": "Fibula", "patella": "Patella", "acetabulum": "Acetabulum", "ace": "Acetabulum",
    "ilium": "Ilium", "ischium": "Ischium", "pelvis": "Pelvis", "sacrum": "Sacrum", "hip": "Hip", "knee": "Knee",
    "lung": "Lung", "heart": "Heart", "diaphragm": "Diaphragm", "hemidiaphragm": "Diaphragm",
    "clavicle": "Clavicle", "rib": "Rib", "spine": "Spine", "vertebra": "Vertebra", "liver": "Liver",
    "bone": "Bone",
}
_ABNORMAL = {"hemorrhage": "Hemorrhage", "haemorrhage": "Hemorrhage", "ich": "IntracranialHemorrhage",
             "fracture": "FractureOfLowerLimb", "fractured": "FractureOfLowerLimb"}
_LATERALITY = {"right": "Right", "r": "Right", "left": "Left", "l": "Left"}
_TRACKING_PREFIX = "radseg-label-"
# A projection image has no slice thickness, but highdicom's reader (segread) requires the
# attribute in the Pixel Measures Sequence; a nominal 1 mm is written and documented.
SLICE_THICKNESS_2D = 1.0


def segment_codes(name: str) -> tuple[Any, Any, Any | None]:
    """(category, type, laterality modifier or None) for a class name like 'right femur'."""
    from highdicom.sr.coding import CodedConcept
    from pydicom.sr.codedict import codes

    words = [w for w in re.split(r"[^a-z]+", name.lower()) if w]
    laterality = next((_LATERALITY[w] for w in words if w in _LATERALITY), None)
    modifier = getattr(codes.SCT, laterality) if laterality else None
    text = " ".join(words)
    for table, category in ((_ABNORMAL, codes.SCT.MorphologicallyAbnormalStructure),
                            (_ANATOMY, codes.SCT.AnatomicalStructure)):
        for phrase in sorted(table, key=len, reverse=True):
            if re.search(rf"\b{phrase}\b", text):
                if table[phrase] == "FractureOfLowerLimb" and "leg" not in words and "tibia" not in words:
                    break  # no generic fracture code in the dictionary: fall through to a local code
                code = getattr(codes.SCT, table[phrase])
                if table[phrase] == "Bone":
                    category = codes.SCT.Tissue
                return category, code, modifier
    # Unknown structure: a private ("99" prefixed) local code, legal in DICOM, meaning = the name.
    local = CodedConcept(value=re.sub(r"[^A-Za-z0-9]", "", name)[:16] or "segment", scheme_designator="99RADSEG",
                         meaning=name[:64] or "segment")
    return codes.SCT.AnatomicalStructure, local, modifier


def write_dicom_seg(
    labels: Image,
    path: str | Path,
    *,
    source_files: Sequence[str | Path] | None = None,
    description: str = "radseg segmentation",
    series_number: int = 300,
    algorithm: str = "radseg",
    algorithm_version: str | None = None,
    manual: bool = False,
) -> Path:
    """Write a label map (or multi-label mask) on the grid of its source DICOM as one SEG file.

    ``source_files`` default to ``labels.metadata["source_files"]`` (set by the DICOM
    reader, in slice order), so ``rio.read(series).with_array(mask)`` just works.
    """
    import highdicom as hd
    import pydicom
    from pydicom.uid import generate_uid

    from radseg import __version__

    path = Path(path)
    files = [Path(f) for f in (source_files or labels.metadata.get("source_files") or [])]
    if not files:
        raise WriteError(path, "DICOM-SEG needs the source DICOM files (read the image with radseg.io.read, "
                               "or pass source_files=...)")
    try:
        sources = [pydicom.dcmread(f) for f in files]
    except Exception as exc:
        raise WriteError(path, f"cannot read source DICOM ({exc})") from exc
    made_up = fill_missing_uids(sources, files, path)
    stack, names, values = to_class_stack(labels, include_empty=False)
    if not values:
        raise WriteError(path, "the label map is empty: a DICOM-SEG needs at least one non-empty segment")
    if labels.ndim == 2:
        pixels = np.moveaxis(stack, 0, -1)[np.newaxis]  # [1, rows, cols, segments]
    else:
        pixels = np.moveaxis(stack, 0, -1)  # [slices, rows, cols, segments]
    options = _geometry_options(labels, sources, files, path)
    descriptions = []
    algorithm_id = hd.AlgorithmIdentificationSequence(
        name=algorithm, version=algorithm_version or __version__,
        family=hd.sr.CodedConcept("123109", "DCM", "Manual Processing") if manual
        else hd.sr.CodedConcept("113289", "DCM", "Artificial Intelligence"))
    for number, (name, value) in enumerate(zip(names, values), start=1):
        category, prop, modifier = segment_codes(name)
        desc = hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=name[:64],
            segmented_property_category=category,
            segmented_property_type=prop,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL if manual else hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=None if manual else algorithm_id,
            tracking_id=f"{_TRACKING_PREFIX}{value}",
            tracking_uid=generate_uid(),
        )
        if modifier is not None:
            desc.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [
                hd.sr.CodedConcept.from_code(modifier) if hasattr(hd.sr.CodedConcept, "from_code")
                else hd.sr.CodedConcept(modifier.value, modifier.scheme_designator, modifier.meaning)]
        descriptions.append(desc)
    try:
        seg = hd.seg.Segmentation(
            source_images=sources,
            pixel_array=pixels.astype(bool),
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions,
            series_instance_uid=generate_uid(),
            series_number=series_number,
            sop_instance_uid=generate_uid(),
            instance_number=1,
            manufacturer="radseg",
            manufacturer_model_name="radseg",
            software_versions=__version__,
            device_serial_number="radseg",
            content_description=description[:64],
            content_label="SEGMENTATION",
            omit_empty_frames=False,
            **options,
        )
    except (ValueError, AttributeError, TypeError) as exc:
        raise WriteError(path, f"highdicom refused the segmentation: {exc}") from exc
    if made_up:
        note = (f"source {', '.join(made_up)} empty; radseg derived them from the source files' SHA-256 "
                "(they are not in the archive)")
        seg.ImageComments = note
        warnings.warn(f"{files[0] if len(files) == 1 else files[0].parent}: {note}; a PACS will not link this SEG "
                      "to the images unless they are given the same UIDs", UserWarning, stacklevel=2)
    if labels.ndim == 2 and "ImagePositionPatient" not in sources[0]:
        # General Image module, type 2C for images without plane position: say which way
        # rows and columns point (copied from the radiograph, empty if it has none).
        seg.PatientOrientation = list(sources[0].get("PatientOrientation") or [])
    with atomic_path(path) as tmp:
        seg.save_as(tmp)
    return path


#: SOP class of a source whose header has none, by modality (file meta first, then this).
_SOP_CLASS_BY_MODALITY = {"CT": "1.2.840.10008.5.1.4.1.1.2", "MR": "1.2.840.10008.5.1.4.1.1.4",
                          "CR": "1.2.840.10008.5.1.4.1.1.1", "DX": "1.2.840.10008.5.1.4.1.1.1.1",
                          "PT": "1.2.840.10008.5.1.4.1.1.128", "US": "1.2.840.10008.5.1.4.1.1.6.1"}
_SERIES_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID")


def fill_missing_uids(sources: list, files: list[Path], path: Path) -> list[str]:
    """Fill empty UIDs of the (in-memory) source datasets; returns the names of those made up.

    Deterministic: a SOP Instance UID from its file's SHA-256, the study, series and frame of
    reference UIDs from the hashes of all the files (see the module's docstring).
    """
    from pydicom.uid import generate_uid

    def empty(ds, keyword: str) -> bool:
        return not str(ds.get(keyword, "") or "").strip()

    needs = [k for k in ("SOPClassUID", "SOPInstanceUID", *_SERIES_UIDS) if any(empty(ds, k) for ds in sources)]
    if not needs:
        return []
    digests = [hashlib.sha256(Path(f).read_bytes()).hexdigest() for f in files]
    made_up: list[str] = []
    for ds, file, digest in zip(sources, files, digests):
        meta = getattr(ds, "file_meta", None)
        if empty(ds, "SOPClassUID"):
            known = str(getattr(meta, "MediaStorageSOPClassUID", "") or "") or \
                _SOP_CLASS_BY_MODALITY.get(str(ds.get("Modality", "")).upper(), "")
            if not known:
                raise WriteError(path, f"the source {file} has no SOP Class UID and an unknown modality "
                                       f"{ds.get('Modality', '')!r}: a SEG cannot say what it was drawn on")
            ds.SOPClassUID = known
        if empty(ds, "SOPInstanceUID"):
            stored = str(getattr(meta, "MediaStorageSOPInstanceUID", "") or "")
            ds.SOPInstanceUID = stored or generate_uid(entropy_srcs=["radseg source instance", digest])
            if not stored:
                made_up.append("SOPInstanceUID")
    for keyword in _SERIES_UIDS:
        if keyword == "FrameOfReferenceUID" and not any(keyword in ds for ds in sources):
            continue  # a projection radiograph has none; the writer gives the SEG its own
        if any(empty(ds, keyword) for ds in sources):
            uid = generate_uid(entropy_srcs=[f"radseg {keyword}", *digests])
            for ds in sources:
                if empty(ds, keyword):
                    setattr(ds, keyword, uid)
            made_up.append(keyword)
    order = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID")
    return [keyword for keyword in order if keyword in made_up]


def _geometry_options(labels: Image, sources: list, files: list[Path], path: Path) -> dict[str, Any]:
    """Check that labels and sources share a grid; supply what radiographs lack."""
    import highdicom as hd

    if labels.ndim == 3:
        if len(sources) != labels.shape[0]:
            raise WriteError(path, f"{labels.shape[0]} label slices but {len(sources)} source instances")
        for k, (ds, file) in enumerate(zip(sources, files)):
            position = np.array([float(v) for v in ds.ImagePositionPatient])
            if (int(ds.Rows), int(ds.Columns)) != labels.shape[1:] or \
                    np.linalg.norm(position - labels.index_to_world([k, 0, 0])) > 0.01:
                raise WriteError(path, f"label slice {k} is not on the grid of {file.name} (was the series "
                                       "resampled for gaps or tilt? re-read with on_gap='error', tilt='shear')")
        return {}
    if len(sources) != 1:
        raise WriteError(path, f"a 2D label map needs one source image, got {len(sources)}")
    ds = sources[0]
    if (int(ds.Rows), int(ds.Columns)) != labels.shape:
        raise WriteError(path, f"labels {labels.shape} do not match the source image {(ds.Rows, ds.Columns)}")
    if "ImagePositionPatient" in ds and "FrameOfReferenceUID" in ds:
        return {}  # a single cross-sectional slice: highdicom takes the geometry from the source
    # Projection radiograph: no patient plane. The pixel measures are the image's spacing in mm.
    spacing = labels.spacing
    return {"pixel_measures": hd.PixelMeasuresSequence(pixel_spacing=[float(spacing[0]), float(spacing[1])],
                                                       slice_thickness=SLICE_THICKNESS_2D)}


def read_dicom_seg(path: str | Path) -> Image:
    """A DICOM-SEG as a label map in its own geometry (LPS, ``[slice, row, col]``), or 2D for a radiograph.

    Label values come from the tracking IDs radseg writes, else the segment numbers.
    Overlapping segments (a multi-label SEG: the heart over the lungs) come back as a multi-label
    mask ``[..., segments]`` with ``class_names``, since no label map can hold them.
    """
    import highdicom as hd

    path = Path(path)
    try:
        seg = hd.seg.segread(str(path))
    except AttributeError as exc:  # highdicom checks pixel measures that a projection SEG may lack
        seg = _read_without_pixel_measures(path, exc)
    except Exception as exc:
        raise ReadError(path, f"not a readable DICOM-SEG ({exc})") from exc
    numbers = list(seg.segment_numbers)
    values, names = {}, {}
    for number in numbers:
        desc = seg.get_segment_description(number)
        tracking = str(getattr(desc, "tracking_id", None) or "")
        value = int(tracking[len(_TRACKING_PREFIX):]) if tracking.startswith(_TRACKING_PREFIX) else number
        values[number], names[value] = value, str(desc.segment_label)
    dtype = np.uint8 if max(values.values()) < 256 else np.uint16
    meta = {"format": "dicom-seg", "source_files": [str(path)], "label_names": names, "problems": []}
    frame_geometry = "PlanePositionSequence" in seg.PerFrameFunctionalGroupsSequence[0] or (
        "PlanePositionSequence" in seg.SharedFunctionalGroupsSequence[0])
    if not frame_geometry:
        (_, _, source_uid), = seg.get_source_image_uids()
        planes = seg.get_pixels_by_source_instance(
            source_sop_instance_uids=[source_uid], segment_numbers=numbers, combine_segments=False)[0]
        spacing = _pixel_spacing(seg)
        if spacing is None:
            meta["problems"].append("no pixel measures in the SEG: pixel size unknown (1 px = 1 unit)")
        base = Image(np.zeros(planes.shape[:2], dtype), spacing=spacing, metadata=meta)
        return _combine(planes > 0, numbers, values, names, base)
    volume = seg.get_volume(combine_segments=False)
    array = volume.array  # [slice, row, col, segment] with an LPS affine over the first three axes
    affine = np.asarray(volume.affine, dtype=float)
    # highdicom may stack the frames either way; order them like a DICOM series read here (the
    # slice axis along row x column cosine), so a SEG and its CT line up array for array.
    normal = np.cross(affine[:3, 2], affine[:3, 1])
    if array.shape[0] > 1 and affine[:3, 0] @ normal < 0:
        array = np.ascontiguousarray(array[::-1])
        affine[:3, 3] = affine[:3, 3] + affine[:3, 0] * (array.shape[0] - 1)
        affine[:3, 0] = -affine[:3, 0]
    return _combine(array > 0, numbers, values, names, Image(np.zeros(array.shape[:3], dtype), affine=affine, metadata=meta))


def _pixel_spacing(seg) -> list[float] | None:
    """Row and column spacing (mm) of a single-frame SEG's pixel measures (shared, else per frame), or None."""
    groups = [*(seg.get("SharedFunctionalGroupsSequence") or [])[:1], *(seg.get("PerFrameFunctionalGroupsSequence") or [])[:1]]
    for group in groups:
        for measures in group.get("PixelMeasuresSequence") or []:
            try:
                spacing = [float(v) for v in measures.PixelSpacing]
            except (AttributeError, TypeError, ValueError):
                continue
            if len(spacing) == 2 and min(spacing) > 0:
                return spacing
    return None


def _read_without_pixel_measures(path: Path, first: Exception):
    """A SEG whose pixel measures highdicom refuses (no spacing, zero spacing): read it without them."""
    import highdicom as hd
    import pydicom

    try:
        ds = pydicom.dcmread(path)
        for groups in (ds.get("SharedFunctionalGroupsSequence") or [], ds.get("PerFrameFunctionalGroupsSequence") or []):
            for group in groups:
                if "PixelMeasuresSequence" in group and not all(
                        "PixelSpacing" in m and "SliceThickness" in m for m in group.PixelMeasuresSequence):
                    del group.PixelMeasuresSequence
        return hd.seg.Segmentation.from_dataset(ds, copy=False)
    except Exception:  # noqa: BLE001 - report highdicom's first complaint, not the retry's
        raise ReadError(path, f"not a readable DICOM-SEG ({first})") from None


def _combine(masks: np.ndarray, numbers: list[int], values: dict[int, int], names: dict[int, str], base: Image) -> Image:
    """Segment masks ``[..., segments]`` as a label map on ``base``, or a multi-label mask when they overlap."""
    from radseg.labels import make_multilabel

    if masks.sum(axis=-1).max(initial=0) > 1:
        stack = np.moveaxis(masks, -1, 0)
        result = make_multilabel(stack, [names[values[n]] for n in numbers], like=base)
        result.metadata.pop("label_names", None)
        result.metadata["class_values"] = [values[n] for n in numbers]
        return result
    labels = base.array.copy()
    for channel, number in enumerate(numbers):
        labels[masks[..., channel]] = values[number]
    return Image(labels, affine=base.affine, metadata=base.metadata)
