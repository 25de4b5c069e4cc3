"""Option values without pydantic: typer (0.2x) turns every option value into its Python type
through a pydantic ``TypeAdapter``, and importing pydantic costs more than parsing a series header.

:func:`fast_coercion` gives the plain parameters of a command (``str``, ``int``, ``float``,
``bool``, ``Path`` and ``Enum`` options and arguments without ranges, parsers or file modes) a coercion that
converts the ordinary values directly and hands anything else (a malformed number, an unknown
choice) to typer's own coercion, so every error message stays typer's. On a typer without this
machinery (older versions) it does nothing.
"""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path
from typing import Any

_INTEGER = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_UNSET = object()


class _FastCoercion:
    """``coerce(value, param, ctx)`` as typer's runtime parameter has it, pydantic only on odd values."""

    def __init__(self, param: Any) -> None:
        self.descriptor = param.type_descriptor
        self.annotation = self.descriptor.annotation
        self.typer_coercion: Any = None

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        if value is None:
            return None
        converted = self._convert(value, param, ctx)
        if converted is not _UNSET:
            return converted
        if self.typer_coercion is None:
            from typer._coercion import build_runtime_param

            self.typer_coercion = build_runtime_param(self.descriptor)
        return self.typer_coercion.coerce(value, param=param, ctx=ctx)

    def _convert(self, value: Any, param: Any, ctx: Any) -> Any:
        annotation = self.annotation
        if annotation is bool:
            return value if isinstance(value, bool) else _UNSET
        if annotation is str:
            return value if isinstance(value, str) else _UNSET
        if annotation is int:
            if type(value) is int:
                return value
            return int(value) if isinstance(value, str) and _INTEGER.fullmatch(value) else _UNSET
        if annotation is float:
            if type(value) in (int, float):
                return float(value)
            return float(value) if isinstance(value, str) and _FLOAT.fullmatch(value) else _UNSET
        if annotation is Path:
            if not isinstance(value, (str, Path)):
                return _UNSET
            from typer._param_types import coerce_cli_path

            # typer's own path checks (exists, readable ...), given a Path so that it needs no pydantic
            return coerce_cli_path(Path(value), self.descriptor.parameter_info, path_type=Path, param=param, ctx=ctx)
        if isinstance(value, annotation):
            return value
        members = {member.value: member for member in annotation}
        return members.get(value, _UNSET)


def _plain(param: Any) -> bool:
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is None or not hasattr(param, "_runtime_param") or param._runtime_param is not None:
        return False
    info = descriptor.parameter_info
    annotation = descriptor.annotation
    simple = annotation in (str, int, float, bool, Path) or (isinstance(annotation, type) and issubclass(annotation, Enum)
                                                        and info.case_sensitive)
    return (simple and descriptor.file_annotation is None and param.nargs == 1 and not param.multiple
            and info.min is None and info.max is None and info.parser is None
            and getattr(info, "click_type", None) is None and not getattr(info, "resolve_path", False)
            and not getattr(info, "allow_dash", False) and getattr(info, "path_type", None) is None)


def fast_coercion(params: list) -> list:
    """Give each plain typer parameter of ``params`` the coercion above (in place); returns ``params``."""
    for param in params:
        if _plain(param):
            param._runtime_param = _FastCoercion(param)
    return params
