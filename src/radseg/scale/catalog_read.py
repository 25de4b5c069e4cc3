"""Reading ``radseg index`` catalogs back: rows selected by a pandas query, and the rows as the
input items of ``segment`` / ``convert`` (read from the files the catalog lists, no folder walked)."""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from radseg.errors import MissingExtraError, RadsegError
from radseg.scale.parts import unique_key

__all__ = ["read_catalog", "catalog_entries", "CatalogEntry"]


def _pyarrow():
    try:
        import pyarrow.parquet  # radseg[scale]; binds pyarrow too
    except ImportError:
        raise MissingExtraError("pyarrow", "scale") from None
    return pyarrow


def read_catalog(paths: str | Path | Iterable[str | Path], where: str | None = None):
    """The rows of one or more catalogs (paths or glob patterns, e.g. ``catalog-*.parquet``) as one pandas
    DataFrame, filtered by ``where`` (a :meth:`pandas.DataFrame.query` expression, e.g. ``modality == 'CT'
    and n_files > 50``). List columns (shape, spacing_mm, files) hold numpy arrays."""
    import pandas as pd
    import pyarrow.parquet as pq

    _pyarrow()
    files: list[Path] = []
    for item in [paths] if isinstance(paths, (str, Path)) else list(paths):
        text = str(item)
        matches = [Path(text)] if Path(text).exists() else [Path(m) for m in sorted(glob.glob(text)) if Path(m).is_file()]
        if not matches:
            raise RadsegError(f"{text}: {'no catalog matches this pattern' if glob.has_magic(text) else 'no such catalog'}")
        files += [m for m in matches if m not in files]
    frames = []
    for path in files:
        try:
            frames.append(pq.read_table(path).to_pandas())
        except Exception as exc:  # noqa: BLE001 - name the file, never a traceback
            raise RadsegError(f"{path}: not a readable catalog ({type(exc).__name__}: {exc})") from None
        missing = [c for c in ("key", "kind", "format", "path", "files", "root") if c not in frames[-1].columns]
        if missing:
            raise RadsegError(f"{path}: not a radseg catalog (no column {', '.join(missing)})")
    if not frames:
        raise RadsegError("no catalog given")
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if where:
        try:
            frame = frame.query(where, engine="python")
        except Exception as exc:  # noqa: BLE001 - a bad expression or column is the user's to fix
            names = ", ".join(map(str, files[:3])) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
            hint = f"; the columns are {', '.join(frame.columns)}" if isinstance(exc, (NameError, KeyError)) else ""
            raise RadsegError(f"{names}: --where {where!r}: {type(exc).__name__}: {exc}{hint}") from None
    return frame.reset_index(drop=True)


@dataclass
class CatalogEntry:
    """One row of a catalog as an input of ``segment`` / ``convert``."""

    key: str  # the case name (unique over the entries)
    path: Path  # the file, or the series' folder
    files: list[Path]  # absolute, in slice order for a series
    kind: str  # series, radiograph, image or unreadable
    format: str  # dicom, nifti, raster, itk
    problems: str = ""  # the catalog's problems of this item ("; "-joined)

    @property
    def label(self) -> str:
        """How reports name the item: its file, or its series' folder."""
        return str(self.files[0] if len(self.files) == 1 else self.path)

    def load(self, **dicom_options: Any):
        """Read the item from the files the catalog lists (no walk of its folder): the Image."""
        from radseg.io import read

        if self.format != "dicom":
            return read(self.files[0] if self.files else self.path)
        from radseg.io.dicom import read_series
        from radseg.io.dicom_scan import scan

        found = scan(self.files)
        if not found.series:
            problem = "; ".join(why for _, why in found.unreadable) or "no readable DICOM image among its files"
            raise RadsegError(f"{self.label}: {problem} (the archive changed since it was indexed?)")
        return read_series(found.series[0], **dicom_options)


def catalog_entries(frame) -> list[CatalogEntry]:
    """The rows of :func:`read_catalog`'s frame, in order; unreadable rows included (``kind`` says so:
    report them as failures). A key repeated across catalogs gets ``-2``, ``-3`` ..."""
    used: set[str] = set()
    columns = (frame[c] for c in ("key", "path", "files", "kind", "format", "root", "problems"))
    return [CatalogEntry(unique_key(str(key), used), Path(root) / path if not Path(path).is_absolute() else Path(path),
                         [Path(root) / f for f in files], str(kind), str(fmt),
                         problems if isinstance(problems, str) else "; ".join(map(str, problems)))
            for key, path, files, kind, fmt, root, problems in zip(*columns)]
