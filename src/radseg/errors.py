"""Errors radseg raises for bad input: each names the file (or item) and the problem."""

from __future__ import annotations

from pathlib import Path


class RadsegError(Exception):
    """Base class: a problem with the user's input that radseg can explain."""


class ReadError(RadsegError, ValueError):
    """A file or folder could not be read as an image; the message names it and says why."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class SeriesError(ReadError):
    """A DICOM series is inconsistent (gaps, duplicates, mixed orientations ...)."""


class WriteError(RadsegError, ValueError):
    """An image cannot be written in the requested format; the message names the target."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class MissingExtraError(RadsegError, ImportError):
    """An optional dependency is missing; the message gives the pip line that fixes it."""

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(
            f"this feature needs the '{module}' package: pip install 'radseg[{extra}]'"
        )
