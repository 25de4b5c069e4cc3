"""What every command shares: the error exit, the progress display, registry choices, common options.

Only typer is imported here; rich is imported when a progress bar is actually drawn, pydantic
(typer's value coercion) only for a value :mod:`radseg.commands.coerce` does not convert itself.
"""

from __future__ import annotations

import sys
from typing import Any, Iterable, NoReturn, Optional, TextIO

import typer
from typer.core import TyperGroup

from radseg.commands.coerce import fast_coercion

#: -h as well as --help; help as wide as the terminal (click alone stops at 80 columns).
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 160}

#: The options that mean the same in every command that has them (one spelling, one help text).
QuietOpt = typer.Option(False, "--quiet", "-q", help="No progress output (neither the bar nor the log lines).")
JsonOpt = typer.Option(False, "--json", help="Print JSON instead of text.")
WorkersOpt = typer.Option(None, "--workers", help="Worker processes, or Ray workers with --engine ray (default or 0: "
                          "the cores this process may use).")


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``error: message`` in red on stderr and exit with ``code``."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def warn(message: str) -> None:
    typer.secho(f"warning: {message}", fg=typer.colors.YELLOW, err=True)


def problems(failed: Iterable[tuple[str, str]] = (), warnings: Iterable[tuple[str, str]] = ()) -> None:
    """``warning: item: problem`` (yellow), then ``failed: item: problem`` (red), on stderr."""
    for item, problem in warnings:
        warn(f"{item}: {problem}")
    for item, problem in failed:
        typer.secho(f"failed: {item}: {problem}", fg=typer.colors.RED, err=True)


def follow_point_tta(predictor, tta: Optional[bool]) -> bool:
    """``--tta/--no-tta`` as given, else as the model's operating point was chosen (so its threshold applies);
    set on ``predictor`` and returned."""
    if tta is None:
        from radseg.evaluate.operating_point import operating_point_tta

        tta = operating_point_tta(predictor.bundle.manifest)
    predictor.tta = bool(tta)
    return predictor.tta


def finish(failed, *, noun: str = "case(s)", note: str = "", done: bool = True, nothing: str = "") -> None:
    """Exit 1 when anything ``failed`` (``N noun failed<note>``), or with ``nothing`` when ``done`` is False."""
    if failed:
        fail(f"{len(failed)} {noun} failed{note}")
    if not done:
        fail(nothing)


def choice(names: Iterable[str], value: Optional[str], what: Optional[str] = None) -> Optional[str]:
    """``value`` when it is one of ``names`` (a registry or any list of names) or None; otherwise
    exit with one error that lists the valid names (``what`` defaults to the registry's kind)."""
    from radseg.registry import unknown_name_message

    if value is None or value in names:
        return value
    fail(unknown_name_message(what or getattr(names, "kind", "value"), value, list(names)))


def listing(names: Iterable[str]) -> str:
    """A registry's names for help text: ``a, b, c``."""
    return ", ".join(names)


def model_help(what: str = "A trained model bundle (folder or .zip)") -> str:
    """Help of ``-m/--model``: a trained bundle, or the name of a model shipped with radseg."""
    from radseg.models.bundle import shipped_models

    return f"{what}, or a shipped model: {listing(shipped_models()) or 'none'}."


def csv_words(text: Optional[str]) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``."""
    return [word.strip() for word in (text or "").split(",") if word.strip()]


def _flags_without_type(params: list) -> list:
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""  # the help shows no value type for a flag that takes no value
    return params


class Group(TyperGroup):
    """The radseg command groups: flags are shown without a ``<bool>`` value type."""

    def get_params(self, ctx):
        return fast_coercion(_flags_without_type(super().get_params(ctx)))

    def get_command(self, ctx, cmd_name: str):
        command = super().get_command(ctx, cmd_name)
        if command is not None and not isinstance(command, Group):
            fast_coercion(_flags_without_type(command.get_params(ctx)))  # plain values need no pydantic
        return command

    def listing_line(self, ctx, name: str) -> Optional[str]:
        """The listing's line for command ``name``: its whole short help (None: hidden)."""
        command = self.get_command(ctx, name)
        return None if command is None or command.hidden else command.get_short_help_str(1000)

    def format_commands(self, ctx, formatter) -> None:
        rows = [(name, text) for name in self.list_commands(ctx) if (text := self.listing_line(ctx, name)) is not None]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)  # wrapped in full (click would cut each line at the width)


def group(help: str, **options: Any) -> typer.Typer:
    """A typer app (the root or a sub-command group) with ``-h``, the flag display above and plain-text
    help (``rich_markup_mode=None``: importing rich would cost more than the rest of ``radseg --help``)."""
    options.setdefault("cls", Group)
    return typer.Typer(help=help, context_settings=CONTEXT, no_args_is_help=True, rich_markup_mode=None, **options)


class Progress:
    """Progress of one task on stderr: a rich bar on a terminal, plain log lines elsewhere
    (CI logs, nohup: one line per item, or one per whole percent beyond 100 items), nothing
    when ``quiet``. Use as a context manager; ``set_total`` and ``advance`` fit the library
    callbacks (``jobs_total=``, ``on_progress=``)."""

    def __init__(self, what: str, total: Optional[int] = None, *, quiet: bool = False,
                 stream: Optional[TextIO] = None) -> None:
        self.what, self.total, self.quiet, self.done = what, total, quiet, 0
        self.stream = sys.stderr if stream is None else stream
        isatty = getattr(self.stream, "isatty", None)
        self.live = not quiet and bool(isatty and isatty())
        self._bar: Any = None
        self._task: Any = None
        self._percent = -1

    def __enter__(self) -> "Progress":
        if self.live:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
            from rich.progress import Progress as Bar

            self._bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            TimeRemainingColumn(), console=Console(file=self.stream))
            self._bar.start()
            self._task = self._bar.add_task(self.what, total=self.total, completed=self.done)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def set_total(self, total: int) -> None:
        self.total = total
        if self._bar is not None:
            self._bar.update(self._task, total=total)

    def describe(self, item: str) -> None:
        """Show the item now being worked on (on the bar only; a log line follows when it is done)."""
        if self._bar is not None:
            self._bar.update(self._task, description=f"{self.what} {item}"[:60])

    def advance(self, item: Optional[str] = None, steps: int = 1) -> None:
        """``steps`` more done; ``item`` names the last one."""
        self.update(self.done + steps, item)

    def update(self, completed: int, item: Optional[str] = None) -> None:
        self.done = completed
        if self._bar is not None:
            self._bar.update(self._task, completed=completed,
                             description=f"{self.what} {item}"[:60] if item else self.what)
        elif not self.quiet:
            self._log(item)

    def _log(self, item: Optional[str]) -> None:
        if self.total and self.total > 100:
            percent = min(100, 100 * self.done // self.total)
            if percent == self._percent:
                return
            self._percent = percent
            count = f"{percent}% ({self.done}/{self.total})"
        else:
            count = f"{self.done}/{self.total}" if self.total else str(self.done)
        self.stream.write(f"{self.what} {count}{' ' + item if item else ''}\n")
        self.stream.flush()


#: Scale-out options of the batch commands (segment, evaluate, convert, index).
EngineOpt = typer.Option("local", "--engine", help="Where the per-item work runs: local (this machine) or ray "
                         "(a Ray Data pipeline; needs the extra radseg[scale]).")
RayAddressOpt = typer.Option(None, "--ray-address", help="With --engine ray: join this Ray cluster (auto or HOST:PORT) "
                             "instead of starting a local Ray with --workers CPUs.")
PartOpt = typer.Option(None, "--part", help="Only part K of N of the items, e.g. 2/4 (items sorted by case key; "
                       "the N parts together cover every item exactly once): for SLURM arrays and other schedulers.")


def scale_options(engine: str, workers: Optional[int], ray_address: Optional[str], part: Optional[str]):
    """(EngineOptions, (K, N) or None) from the scale-out options; a bad value exits with its message."""
    from radseg.errors import RadsegError
    from radseg.scale.engine import EngineOptions
    from radseg.scale.parts import parse_part

    try:
        return EngineOptions(engine=engine, workers=workers or None, ray_address=ray_address), parse_part(part)
    except (RadsegError, ValueError) as exc:
        fail(str(exc))

CatalogOpt = typer.Option(None, "--catalog", help="Items from a catalog of `radseg index` (a .parquet file or a glob of "
                          "part catalogs) instead of walking a folder.")
WhereOpt = typer.Option(None, "--where", help="With --catalog: the rows to take, a pandas query such as "
                        "\"modality == 'CT' and n_files > 100\".")


def input_or_catalog(source, catalog: Optional[str], where: Optional[str]) -> str:
    """What a batch reads: its input path, or its catalog (exactly one of them; --where only with --catalog)."""
    if (source is None) == (catalog is None):
        fail("give an input (file or folder) or --catalog CATALOG.parquet, not both" if source is not None
             else "no input: give a file or folder, or --catalog CATALOG.parquet from `radseg index`")
    if where and not catalog:
        fail("--where selects rows of a catalog: it needs --catalog")
    return str(source if source is not None else catalog)


def catalog_rows(catalog: str, where: Optional[str]):
    """The catalog's entries that ``where`` selects; a bad catalog or query exits with its message."""
    from radseg.errors import RadsegError
    from radseg.scale.catalog_read import catalog_entries, read_catalog

    try:
        return catalog_entries(read_catalog(catalog, where))
    except RadsegError as exc:
        fail(str(exc))
