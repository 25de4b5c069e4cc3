"""Write files so a crash never leaves a half-written file that looks complete."""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

# Suffixes made of two parts that readers and writers must keep together.
_COMPOUND_SUFFIXES = (".nii.gz", ".tar.gz", ".seg.nrrd")


def full_suffix(path: str | Path) -> str:
    """The format suffix of ``path`` in lower case, keeping compound ones (``.nii.gz``)."""
    name = Path(path).name.lower()
    for suffix in _COMPOUND_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return Path(name).suffix


def strip_suffix(path: str | Path) -> str:
    """The file name of ``path`` without its (compound) format suffix."""
    name = Path(path).name
    suffix = full_suffix(path)
    return name[: len(name) - len(suffix)] if suffix else name


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix, so writers pick the same format).

    On success the temporary file replaces ``path`` in one rename; on any error it is
    removed and ``path`` is left as it was. File-system errors become a WriteError
    naming ``path``.
    """
    from radseg.errors import WriteError

    path = Path(path)
    tmp = path.with_name(f".{strip_suffix(path)}.partial-{uuid.uuid4().hex[:8]}{full_suffix(path)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        if isinstance(exc, OSError):  # name the file the user asked for, not the temporary one
            raise WriteError(path, f"cannot write here ({exc.strerror or exc})") from exc
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write a small text file (JSON sidecar, CSV) atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
