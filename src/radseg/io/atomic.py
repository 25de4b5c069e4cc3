"""Write files so a crash never leaves a half-written file that looks complete.

A killed process can still leave its hidden temporary file (``.NAME.partial-XXXXXXXX.SUFFIX``)
behind; :func:`remove_stale_partials` clears those of one output before it is written again.
:func:`not_regular` tells readers which paths must not be opened (a FIFO blocks forever).
"""

from __future__ import annotations

import os
import stat
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


def partial_name(path: str | Path, tag: str = "*") -> str:
    """Name of the temporary file for ``path`` (``tag="*"`` gives the glob pattern of all of them)."""
    return f".{strip_suffix(path)}.partial-{tag}{full_suffix(path)}"


def remove_stale_partials(path: str | Path) -> list[Path]:
    """Delete temporary files a killed writer of ``path`` left behind; returns what was removed."""
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    for stale in path.parent.glob(partial_name(path)):
        try:
            stale.unlink()
            removed.append(stale)
        except OSError:
            pass
    return removed


def not_regular(path: str | Path) -> str | None:
    """Why ``path`` must not be opened for reading (FIFO, socket, device), or None for a regular file."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        return f"cannot stat ({exc.strerror or exc})"
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    what = ("FIFO" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode)
            else "device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "special file")
    return f"not a regular file ({what}): not opened"


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix, so writers pick the same format).

    On success the temporary file replaces ``path`` in one rename; on any error it is
    removed and ``path`` is left as it was. File-system errors become a WriteError
    naming ``path``.
    """
    from radseg.errors import WriteError

    path = Path(path)
    tmp = path.with_name(partial_name(path, uuid.uuid4().hex[:8]))
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
