"""A fast, partial DICOM header reader for scanning series: the tags radseg groups, sorts and
describes by, without pydicom.

pydicom parses a CT slice header in about 1 ms and converts each element it is asked for in
about as much again; a 300-slice series then costs ~0.5 s of headers before a voxel is read
(dcm2niix: 0.07 s for everything). :func:`read_fast_header` reads the first 16 KB of a file,
walks its elements in plain Python (explicit or implicit VR little endian, sequences skipped)
and stops at the pixel data, noting where it starts. Values are decoded on first access, from a
fixed table of the keywords radseg uses (:data:`KEYWORDS`).

Anything out of the ordinary is left to pydicom, so behaviour never changes, only speed:

* files the walker does not handle (no ``DICM`` preamble, big-endian or deflated transfer
  syntaxes, no pixel data, no Rows/Columns, enhanced multi-frame objects, headers longer than
  the file) make :func:`read_fast_header` return None, and the caller reads them with pydicom;
* a keyword outside the table, a sequence, or text in a character set other than ASCII,
  Latin-1 or UTF-8 is answered by the whole pydicom dataset of the file, read on first need
  (:meth:`FastHeader.full`);
* pixels of an uncompressed little-endian slice are read with one ``readinto`` straight into
  the caller's array; everything else (compressed, odd bit depths) goes through pydicom.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

from radseg.system import usable_cores

#: keyword -> (tag, VR) of every element read here without pydicom.
KEYWORDS: dict[str, tuple[int, str]] = {
    "SpecificCharacterSet": (0x00080005, "CS"), "ImageType": (0x00080008, "CS"), "SOPClassUID": (0x00080016, "UI"),
    "SOPInstanceUID": (0x00080018, "UI"), "StudyDate": (0x00080020, "DA"), "Modality": (0x00080060, "CS"),
    "PresentationIntentType": (0x00080068, "CS"), "Manufacturer": (0x00080070, "LO"),
    "SeriesDescription": (0x0008103E, "LO"), "ManufacturerModelName": (0x00081090, "LO"),
    "PatientID": (0x00100020, "LO"), "BodyPartExamined": (0x00180015, "CS"), "ScanOptions": (0x00180022, "CS"),
    "SliceThickness": (0x00180050, "DS"), "KVP": (0x00180060, "DS"), "RepetitionTime": (0x00180080, "DS"),
    "EchoTime": (0x00180081, "DS"), "MagneticFieldStrength": (0x00180087, "DS"), "EchoNumbers": (0x00180086, "IS"),
    "SpacingBetweenSlices": (0x00180088, "DS"), "SoftwareVersions": (0x00181020, "LO"),
    "ProtocolName": (0x00181030, "LO"), "ReconstructionDiameter": (0x00181100, "DS"),
    "DistanceSourceToDetector": (0x00181110, "DS"), "DistanceSourceToPatient": (0x00181111, "DS"),
    "GantryDetectorTilt": (0x00181120, "DS"), "ExposureTime": (0x00181150, "IS"),
    "XRayTubeCurrent": (0x00181151, "IS"), "Exposure": (0x00181152, "IS"), "ConvolutionKernel": (0x00181210, "SH"),
    "FlipAngle": (0x00181314, "DS"), "ImagerPixelSpacing": (0x00181164, "DS"), "PatientPosition": (0x00185100, "CS"),
    "ViewPosition": (0x00185101, "CS"), "EstimatedRadiographicMagnificationFactor": (0x00181114, "DS"),
    "StudyInstanceUID": (0x0020000D, "UI"), "SeriesInstanceUID": (0x0020000E, "UI"),
    "SeriesNumber": (0x00200011, "IS"), "AcquisitionNumber": (0x00200012, "IS"), "InstanceNumber": (0x00200013, "IS"),
    "ImagePositionPatient": (0x00200032, "DS"), "ImageOrientationPatient": (0x00200037, "DS"),
    "FrameOfReferenceUID": (0x00200052, "UI"), "Laterality": (0x00200060, "CS"), "ImageLaterality": (0x00200062, "CS"),
    "TemporalPositionIdentifier": (0x00200100, "IS"), "SliceLocation": (0x00201041, "DS"),
    "SamplesPerPixel": (0x00280002, "US"), "PhotometricInterpretation": (0x00280004, "CS"),
    "PlanarConfiguration": (0x00280006, "US"), "NumberOfFrames": (0x00280008, "IS"), "Rows": (0x00280010, "US"),
    "Columns": (0x00280011, "US"), "PixelSpacing": (0x00280030, "DS"), "BitsAllocated": (0x00280100, "US"),
    "BitsStored": (0x00280101, "US"), "HighBit": (0x00280102, "US"), "PixelRepresentation": (0x00280103, "US"),
    "WindowCenter": (0x00281050, "DS"), "WindowWidth": (0x00281051, "DS"), "RescaleIntercept": (0x00281052, "DS"),
    "RescaleSlope": (0x00281053, "DS"), "RescaleType": (0x00281054, "LO"), "LossyImageCompression": (0x00282110, "CS"),
    "GridFrameOffsetVector": (0x3004000C, "DS"), "DoseGridScaling": (0x3004000E, "DS"),
    "PerFrameFunctionalGroupsSequence": (0x52009230, "SQ"), "SharedFunctionalGroupsSequence": (0x52009229, "SQ"),
    "FloatPixelData": (0x7FE00008, "OF"), "DoubleFloatPixelData": (0x7FE00009, "OD"), "PixelData": (0x7FE00010, "OW"),
}
_BY_TAG = {tag: vr for tag, vr in KEYWORDS.values()}

EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
_NOT_WALKED = {"1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"}  # big endian, deflated: pydicom reads them
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"}
_PIXEL_TAGS = (0x7FE00008, 0x7FE00009, 0x7FE00010)
_PIXEL_TAG_SET = frozenset(_PIXEL_TAGS)
_EXPLICIT = struct.Struct("<HH2sH")  # explicit VR element: group, element, VR, 16-bit length
_IMPLICIT = struct.Struct("<HHI")  # implicit VR element (or item tag): group, element, 32-bit length
_LONG = struct.Struct("<I")
_VR_TEXT = {vr.encode(): vr for vr in ("AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD",
                                       "OF", "OL", "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI",
                                       "UL", "UN", "UR", "US", "UT", "UV")}
_ENHANCED = 0x52009230
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_HEAD = 16384  # bytes read first: CT/MR headers fit; a longer one is read whole
_BINARY = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d"}
_TEXT = {"LO", "SH", "PN", "LT", "ST", "UT", "UC"}  # may carry non-ASCII text (SpecificCharacterSet)
_CHARSETS = {"": "latin-1", "ISO_IR 6": "latin-1", "ISO_IR 100": "latin-1", "ISO_IR 192": "utf-8"}
_MISSING = object()
_UNSET = object()


class _Short(Exception):
    """The element walk ran past the bytes read."""


class FastHeader:
    """The elements of one file up to its pixel data; ``get``/``in``/attributes like a pydicom Dataset."""

    def __init__(self, path: Path, transfer_syntax: str, elements: dict[int, tuple[str | None, bytes]],
                 pixel: tuple[int, int, int]) -> None:
        self.filename = str(path)
        self.transfer_syntax = transfer_syntax
        self._elements = elements
        self.pixel_tag, self.pixel_offset, self.pixel_length = pixel
        self._values: dict[str, Any] = {}
        self._full: Any = None
        charset = self._text("SpecificCharacterSet") if 0x00080005 in elements else ""
        self._encoding = _CHARSETS.get(charset.strip() if isinstance(charset, str) else "\\".join(charset))

    def __repr__(self) -> str:
        return f"FastHeader({self.filename!r})"

    # -- the Dataset API the scanner and readers use ---------------------------------------
    def get(self, keyword: str, default: Any = None) -> Any:
        value = self._values.get(keyword, _UNSET)  # decoded before: no further call (scans ask ~20 times a file)
        if value is _UNSET:
            value = self._value(keyword)
        return default if value is _MISSING else value

    def __contains__(self, keyword: object) -> bool:
        if isinstance(keyword, int):
            return keyword in self._elements or keyword == self.pixel_tag
        entry = KEYWORDS.get(keyword)  # type: ignore[arg-type]
        if entry is None:
            return keyword in self.full()
        return entry[0] in self._elements or entry[0] == self.pixel_tag

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or not name[:1].isupper():
            raise AttributeError(name)
        value = self._value(name)
        if value is _MISSING:
            raise AttributeError(f"{self.filename} has no element {name}")
        return value

    @property
    def file_meta(self) -> dict[str, str]:
        return {"TransferSyntaxUID": self.transfer_syntax}

    def full(self) -> Any:
        """The file's whole pydicom dataset (pixel data deferred), read once, on first need."""
        if self._full is None:
            import pydicom

            self._full = pydicom.dcmread(self.filename, defer_size="4 KB")
        return self._full

    # -- pixels -----------------------------------------------------------------------------
    def native_dtype(self) -> Any:
        """The numpy dtype of uncompressed single-frame greyscale pixels that are the array as stored, else None."""
        import numpy as np

        if self.transfer_syntax not in (EXPLICIT_LE, IMPLICIT_LE) or self.pixel_tag != 0x7FE00010:
            return None
        bits, signed = self.get("BitsAllocated"), self.get("PixelRepresentation") == 1
        stored = self.get("BitsStored") or bits
        if bits not in (8, 16) or (self.get("SamplesPerPixel") or 1) != 1 or int(self.get("NumberOfFrames") or 1) != 1:
            return None
        if signed and stored != bits:
            return None  # sign extension from BitsStored: pydicom's job
        dtype = np.dtype(f"<{'i' if signed else 'u'}{bits // 8}")
        if self.pixel_length != self.get("Rows") * self.get("Columns") * dtype.itemsize:  # both there: _walk checks
            return None
        return dtype

    def read_pixels(self, out: Any = None) -> Any:
        """Stored pixel values (before rescale), into ``out`` when it fits; pydicom decodes what is not plain."""
        import numpy as np

        dtype = self.native_dtype()
        if dtype is None:
            return decode_pixels_full(self)
        shape = (self.get("Rows"), self.get("Columns"))
        target = out if out is not None and out.shape == shape and out.dtype == dtype else np.empty(shape, dtype)
        with open(self.filename, "rb") as handle:
            handle.seek(self.pixel_offset)
            count = handle.readinto(memoryview(target).cast("B"))
        if count != self.pixel_length:
            raise ValueError(f"pixel data truncated: {count} of {self.pixel_length} bytes in the file")
        stored = self.get("BitsStored") or 0
        if dtype.kind == "u" and stored < dtype.itemsize * 8 and target.max(initial=0) >= (1 << stored):
            return decode_pixels_full(self)  # bits above BitsStored are set (overlays): let pydicom decide
        return target

    # -- decoding ---------------------------------------------------------------------------
    def _value(self, keyword: str) -> Any:
        if keyword in self._values:
            return self._values[keyword]
        entry = KEYWORDS.get(keyword)
        if entry is None or entry[1] == "SQ":
            value = self.full().get(keyword, _MISSING)
        elif entry[0] == self.pixel_tag:
            value = self.full().get(keyword, _MISSING)  # deferred by pydicom too; rarely asked for
        elif entry[0] not in self._elements:
            value = _MISSING
        else:
            vr, raw = self._elements[entry[0]]
            vr = entry[1] if vr in (None, "UN") else vr  # implicit VR, or UN: the dictionary VR, as pydicom does
            if vr in _TEXT and self._encoding is None:
                value = self.full().get(keyword, _MISSING)
            else:
                value = _decode(raw, vr, self._encoding or "latin-1")
        self._values[keyword] = value
        return value

    def _text(self, keyword: str) -> Any:
        return _decode(self._elements[KEYWORDS[keyword][0]][1], "CS", "latin-1")


def decode_pixels_full(header: FastHeader) -> Any:
    """pydicom's decoding of the file's pixels (compressed, odd bit depths, overlays in the high bits)."""
    from radseg.io.dicom_tags import decode_pixels

    return decode_pixels(header.full())


def _decode(raw: bytes, vr: str, encoding: str) -> Any:
    if vr in _BINARY:
        code = _BINARY[vr]
        count = len(raw) // struct.calcsize(code)
        if count == 0:
            return None
        values = struct.unpack(f"<{count}{code}", raw[: count * struct.calcsize(code)])
        return values[0] if count == 1 else list(values)
    if vr in ("OB", "OW", "UN", "OF", "OD", "OL", "OV"):
        return raw
    text = raw.decode(encoding if vr in _TEXT else "latin-1").rstrip(" \x00")
    if vr in ("LT", "ST", "UT"):
        return text
    if "\\" not in text:  # one value, the common case: what the general path below gives, sooner
        if vr in ("DS", "IS", "UI"):
            text = text.strip(" \x00")
        return _number(text, vr) if vr in ("DS", "IS") else text
    parts = [part.strip(" \x00") if vr in ("DS", "IS", "UI") else part for part in text.split("\\")]  # as pydicom
    if vr in ("DS", "IS"):
        parts = [_number(part, vr) for part in parts]
    if len(parts) == 1:
        return parts[0]
    return parts


def _number(text: str, vr: str) -> Any:
    if text == "":
        return ""
    try:
        return float(text) if vr == "DS" else int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            return text  # malformed: the raw string, as pydicom keeps it
        return int(value) if vr == "IS" and value.is_integer() else value


def read_fast_header(path: str | Path) -> FastHeader | None:
    """The header of a plain single-frame DICOM image, or None when pydicom should read this file."""
    if not isinstance(path, Path):
        path = Path(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(_HEAD)
            if len(data) < 132 or data[128:132] != b"DICM":
                return None
            try:
                header = _walk(path, data)
            except _Short:
                data += handle.read()  # a header longer than the first read: take the whole file
                header = _walk(path, data)
            return header if header is None or _complete(header, handle) else None
    except (_Short, struct.error, UnicodeDecodeError, ValueError, OSError):
        return None


_SEQUENCE_END_BYTES = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


def _complete(header: FastHeader, handle: Any) -> bool:
    """The pixel data is all there: its length fits the file, or the encapsulated frames end with their
    delimiter (a cut file goes to pydicom, which names it truncated)."""
    size = os.fstat(handle.fileno()).st_size
    if header.pixel_length != _UNDEFINED:
        return header.pixel_offset + header.pixel_length <= size
    handle.seek(max(size - 8, 0))
    return handle.read(8) == _SEQUENCE_END_BYTES


def _walk(path: Path, data: bytes) -> FastHeader | None:
    meta: dict[int, tuple[str | None, bytes]] = {}
    position = _elements(data, 132, True, meta, group=0x0002)
    syntax_raw = meta.get(0x00020010)
    if syntax_raw is None:
        return None
    syntax = syntax_raw[1].decode("latin-1").strip(" \x00")
    if syntax in _NOT_WALKED:
        return None
    elements: dict[int, tuple[str | None, bytes]] = {}
    pixel: list[int] = []
    _elements(data, position, syntax != IMPLICIT_LE, elements, pixel=pixel)
    if not pixel or _ENHANCED in elements or 0x00280010 not in elements or 0x00280011 not in elements:
        return None
    return FastHeader(path, syntax, elements, (pixel[0], pixel[1], pixel[2]))


def _elements(data: bytes, position: int, explicit: bool, out: dict | None, *, group: int | None = None,
              pixel: list | None = None, until: int | None = None) -> int:
    """Walk elements from ``position``; keep them in ``out`` (None: skip); returns where the walk ended.

    Stops at the pixel data (noting tag, offset and length in ``pixel``), at the end of ``group``,
    at an item delimiter (inside an undefined-length item) or at ``until``.

    This loop runs ~50 times per file (a few hundred thousand times for a large series), so it is
    written for CPython's speed: one precompiled unpack gives tag, VR and short length together,
    and the VR is turned into text only for the elements kept.
    """
    size = len(data)
    end = size if until is None else until
    keep, long_vrs, pixel_tags = _BY_TAG, _LONG_VRS, _PIXEL_TAG_SET
    stop_at_pixels = pixel is not None and out is not None
    unpack_explicit, unpack_implicit, unpack_long = _EXPLICIT.unpack_from, _IMPLICIT.unpack_from, _LONG.unpack_from
    while position < end:
        if position + 8 > size:
            raise _Short
        if explicit:
            element_group, element, vr_bytes, length = unpack_explicit(data, position)
        else:
            element_group, element, length = unpack_implicit(data, position)
        if group is not None and element_group != group:
            return position
        tag = element_group << 16 | element
        if tag == 0xFFFEE00D:  # item delimiter
            return position + 8
        if explicit and element_group != 0xFFFE:
            if vr_bytes in long_vrs:
                if position + 12 > size:
                    raise _Short
                length = unpack_long(data, position + 8)[0]
                start = position + 12
            else:
                start = position + 8
        else:
            if explicit:  # item tags carry no VR, only a 32-bit length
                length = unpack_long(data, position + 4)[0]
            start = position + 8
            vr_bytes = None
        if stop_at_pixels and tag in pixel_tags:
            pixel += [tag, start, length]
            return start
        if length == 0xFFFFFFFF:  # undefined length: a sequence
            position = _skip_sequence(data, start, explicit and vr_bytes != b"UN")
            continue
        position = start + length
        if position > size:
            raise _Short
        if out is not None and (tag in keep or element_group == 0x0002):
            out[tag] = (_VR_TEXT.get(vr_bytes) or vr_bytes.decode("latin-1") if vr_bytes is not None else None,
                        data[start:position])
    if until is None:
        raise _Short  # ran out of bytes before the pixel data
    return position


def _skip_sequence(data: bytes, position: int, explicit: bool) -> int:
    """Past an undefined-length sequence: its items, each of defined or undefined length."""
    while True:
        if position + 8 > len(data):
            raise _Short
        tag = struct.unpack_from("<HH", data, position)
        tag_value = tag[0] << 16 | tag[1]
        length = struct.unpack_from("<I", data, position + 4)[0]
        position += 8
        if tag_value == _SEQUENCE_END:
            return position
        if tag_value != _ITEM:
            raise ValueError("malformed sequence")
        if length == _UNDEFINED:
            position = _elements(data, position, explicit, None, until=len(data) + 1)
        else:
            position += length


#: From this many files on, headers are parsed by a pool of processes (one per core).
PARALLEL_FROM = 2000


def fast_headers(files: list[Path], *, workers: int | None = None) -> dict[Path, Any]:
    """:func:`read_fast_header` of each file (None: pydicom reads it), in parallel for many files."""
    cores = workers or usable_cores()
    if len(files) < PARALLEL_FROM or cores < 2:
        return {path: read_fast_header(path) for path in files}
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
    chunk = max(64, len(files) // (cores * 8))
    try:
        with ProcessPoolExecutor(cores, mp_context=multiprocessing.get_context(method)) as pool:
            return dict(zip(files, pool.map(read_fast_header, files, chunksize=chunk)))
    except (OSError, RuntimeError):  # no processes here (sandbox, frozen app): parse in this one
        return {path: read_fast_header(path) for path in files}
