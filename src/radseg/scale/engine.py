"""Where a batch's per-item work runs: ``local`` (this process, or a process pool) or ``ray``
(a Ray Data pipeline on a local Ray or an existing cluster).

Commands hand the engine a list of jobs and a per-job function that never raises (a bad item
comes back as its error record, so the engines report failures identically); results stream
back to the caller, which writes reports and state files as before. Two shapes:

- :func:`map_jobs`: a stateless function per job (evaluation of a case, conversion of a series,
  the headers of a folder). Ray Data runs it as tasks.
- :func:`map_jobs_with_state`: ``prepare(job)`` on CPU workers (read and decode the image), then
  ``work(state, prepared)`` in an **actor pool** whose actors build ``state = setup()`` once
  (load the model once per actor, not once per image).

Ray specifics. Without ``ray_address`` a local Ray is started with ``workers x threads`` CPUs (plus
one logical slot for the read tasks, which mostly wait on the disk; an actor reserves ``threads`` CPUs) and shut down at the end; with
``ray_address`` (``auto`` or ``HOST:PORT``) radseg joins that cluster and leaves it running.
Tasks are retried and actors restarted when a worker process dies (``RETRIES`` times), so a
killed worker costs the item a retry, not the batch; writers are atomic, so a retried item never
leaves a half-written file. Ray is an optional extra: its absence is answered with the install line.
"""

from __future__ import annotations

import contextlib
import pickle
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from radseg.errors import RadsegError
from radseg.system import usable_cores

__all__ = ["ENGINES", "EngineOptions", "map_jobs", "map_jobs_with_state", "ray_session", "RAY_INSTALL"]

ENGINES = ("local", "ray")
RAY_INSTALL = "pip install 'radseg[scale]'  (or: pip install 'ray[data]')"
#: Retries of a task / restarts of an actor whose worker process died.
RETRIES = 3


@dataclass(frozen=True)
class EngineOptions:
    engine: str = "local"
    workers: int | None = None  # processes (local) or Ray workers / actors (ray); None: all cores
    ray_address: str | None = None  # None: start a local Ray; "auto" or HOST:PORT: join a cluster
    threads: int = 1  # CPUs each Ray worker (actor) reserves: the threads its model runs with

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise RadsegError(f"--engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.workers is not None and self.workers < 0:
            raise RadsegError(f"--workers must be 0 (all cores) or more, got {self.workers}")
        if self.threads < 1:
            raise RadsegError(f"threads per worker must be 1 or more, got {self.threads}")
        if self.ray_address and self.engine != "ray":
            raise RadsegError("--ray-address needs --engine ray")

    def worker_count(self, jobs: int | None = None) -> int:
        count = self.workers or usable_cores()
        return max(1, min(count, jobs)) if jobs else max(1, count)


def import_ray():
    try:
        import ray
        import ray.data  # noqa: F401 - the pipelines need Ray Data (pyarrow, pandas)
    except ImportError as exc:
        raise RadsegError(f"--engine ray needs Ray Data, which is not installed ({exc.name} missing): {RAY_INSTALL}") from None
    return ray


@contextlib.contextmanager
def ray_session(options: EngineOptions) -> Iterator[Any]:
    """Ray, initialised for this batch: joined (``ray_address``) or started locally and shut down after."""
    import logging  # here, not at the top: ~3 ms of every local command's start-up, for Ray only

    ray = import_ray()
    logging.getLogger("ray").setLevel(logging.ERROR)  # Ray's start-up notes are not the user's concern
    started = False
    if not ray.is_initialized():
        quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR,
                 "configure_logging": True}
        try:
            if options.ray_address:
                ray.init(address=options.ray_address, **quiet)
            else:
                # One logical CPU per worker plus one for the read tasks; a small object store is enough
                # (items stream through it one at a time) and leaves the machine's memory to the work.
                ray.init(num_cpus=options.worker_count() * options.threads + 1, object_store_memory=_object_store_bytes(), **quiet)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {options.ray_address}" if options.ray_address else "a local Ray"
            raise RadsegError(f"could not start or join {where}: {exc}") from None
        started = True
    # Ray's API deprecation notes are ours to act on, not the user's.
    warnings.filterwarnings("ignore", message=r".*(deprecated|Deprecat).*")
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    # Fewer bookkeeping round trips per item: on a small machine Ray Data's stats and locality
    # tracking compete with the work itself for the same cores.
    context.enable_auto_log_stats = False
    context.enable_get_object_locations_for_metrics = False
    context.enable_stats_summary_collection = False
    context.execution_options.actor_locality_enabled = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def _object_store_bytes() -> int:
    return 512 * 1024**2


def map_jobs(fn: Callable[[Any], Any], jobs: Sequence[Any], options: EngineOptions) -> Iterator[tuple[int, Any]]:
    """``(index, fn(job))`` for every job, in the order they finish. ``fn`` must be picklable
    (a module-level function) and must report errors in its result instead of raising."""
    if not jobs:
        return
    workers = options.worker_count(len(jobs))
    if options.engine == "local":
        if workers == 1:
            for index, job in enumerate(jobs):
                yield index, fn(job)
            return
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=workers) as pool:
            yield from enumerate(pool.map(fn, jobs, chunksize=1))
        return
    with ray_session(options) as ray:
        dataset = _dataset(ray, jobs).map(_RunJob(fn), num_cpus=1, max_retries=RETRIES)
        yield from _results(dataset)


def map_jobs_with_state(setup: Callable[[], Any], work: Callable[[Any, Any], Any], jobs: Sequence[Any],
                        options: EngineOptions, *, prepare: Callable[[Any], Any] | None = None) -> Iterator[tuple[int, Any]]:
    """``(index, work(state, prepare(job)))`` for every job, in the order they finish; ``state =
    setup()`` is built once per worker. ``prepare`` and ``work`` must report errors in their
    results (``prepare`` may return an error record that ``work`` passes through)."""
    if not jobs:
        return
    prepare = prepare or _identity
    if options.engine == "local":
        state = setup()  # the local engine keeps one worker: the model is loaded once, in this process
        for index, job in enumerate(jobs):
            yield index, work(state, prepare(job))
        return
    workers = options.worker_count(len(jobs))
    with ray_session(options) as ray:
        dataset = (_dataset(ray, jobs)
                   .map(_RunJob(prepare), num_cpus=0.5, max_retries=RETRIES)
                   .map(_worker_class(setup, work), num_cpus=options.threads,
                        compute=ray.data.ActorPoolStrategy(size=workers),
                        max_restarts=RETRIES, max_task_retries=RETRIES))
        yield from _results(dataset)


def _identity(job: Any) -> Any:
    return job


def _dataset(ray, jobs: Sequence[Any]):
    # Jobs travel pickled (they may hold paths, tuples, records that Arrow cannot type); one block
    # per job lets Ray balance items of very different cost (a CT series beside a radiograph).
    from ray import cloudpickle  # jobs may hold closures (a series' reader), which pickle cannot carry

    rows = [{"index": index, "payload": cloudpickle.dumps(job)} for index, job in enumerate(jobs)]
    return ray.data.from_items(rows, override_num_blocks=len(rows))


def _results(dataset) -> Iterator[tuple[int, Any]]:
    for row in dataset.iter_rows():
        yield int(row["index"]), pickle.loads(row["payload"])


class _RunJob:
    """A Ray Data row function that unpickles the job, runs ``fn`` and pickles its result."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        from ray import cloudpickle

        return {"index": row["index"], "payload": cloudpickle.dumps(self.fn(pickle.loads(row["payload"])))}


def _worker_class(setup: Callable[[], Any], work: Callable[[Any, Any], Any]) -> type:
    """A Ray Data actor class with ``setup`` and ``work`` built in (travelling with the class, not as
    constructor arguments in the object store, which Ray could not restore after a worker died)."""
    return type("RadsegWorker", (_StatefulWorker,), {"setup": staticmethod(setup), "work": staticmethod(work)})


class _StatefulWorker:
    """A Ray Data actor: ``setup()`` once (e.g. load the model), then ``work(state, job)`` per row."""

    setup: Callable[[], Any]
    work: Callable[[Any, Any], Any]

    def __init__(self) -> None:
        self.state = self.setup()

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        from ray import cloudpickle

        return {"index": row["index"], "payload": cloudpickle.dumps(self.work(self.state, pickle.loads(row["payload"])))}
