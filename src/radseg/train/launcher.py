"""Starts and watches the processes of ``radseg train --nproc N`` (see :mod:`radseg.train.distributed`).

:func:`launch` (called by :func:`radseg.train.loop.train`) starts N worker processes
with multiprocessing ``spawn`` and stays in the calling process as their launcher. Not
torchrun, because here the launcher keeps ``train()``'s contract: ``on_event`` runs in the
caller (progress bar, a callback that raises ``KeyboardInterrupt`` to stop), a
:class:`TrainResult` comes back, and errors are the same ``RadsegError`` messages, not a
ChildFailedError report. Rendezvous is a ``TCPStore`` the launcher binds on port 0 (the
kernel picks a free port: no probe-then-bind race). Robustness: workers ignore SIGINT and
die with the launcher (``PR_SET_PDEATHSIG``); Ctrl-C or SIGTERM to the launcher becomes a
stop that all ranks agree on at the next step (so the bundle is written, as in one process);
a second one kills them; when any worker fails the others are killed at once and its message
and exit code are reported (no rank waits for a dead peer; the process-group timeout,
``RADSEG_DIST_TIMEOUT`` seconds, default 600, is only the last resort for a hung one).
"""

from __future__ import annotations

import datetime
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from radseg.errors import RadsegError
from radseg.train.distributed import Group, check

__all__ = ["DistributedError", "launch"]

TIMEOUT_S = float(os.environ.get("RADSEG_DIST_TIMEOUT", "600"))


class DistributedError(RadsegError):
    """A training process failed; ``exit_code`` is its exit status (128 + signal when killed)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class _Job:
    world: int
    backend: str
    port: int
    config: Any
    data: Any  # a prepared-dataset folder (each worker reads it) or a TrainData (pickled)
    stop: Any
    wall_start: float  # time.time() of the caller's clock start: the time limit covers startup
    timeout_s: float


def _die_with_parent() -> None:
    """Linux: the kernel kills this worker when the launcher dies (no orphaned training)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _worker(rank: int, job: _Job, conn, parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the launcher decides
    _die_with_parent()
    if os.getppid() != parent:
        os._exit(1)
    import torch.distributed as dist

    from radseg.train.data import load_prepared
    from radseg.train.session import Session

    def emit(event: dict) -> None:
        conn.send(("event", event))
        conn.recv()  # the launcher has handled it (and may have asked to stop): as in one process

    code = 0
    try:
        timeout = datetime.timedelta(seconds=job.timeout_s)
        store = dist.TCPStore("127.0.0.1", job.port, job.world, False, timeout=timeout)
        dist.init_process_group(job.backend, store=store, rank=rank, world_size=job.world, timeout=timeout)
        dataset = load_prepared(job.data) if isinstance(job.data, (str, Path)) else job.data
        clock_start = time.perf_counter() - (time.time() - job.wall_start)
        group = Group(rank, job.world, job.backend, job.stop)
        session = Session(job.config, dataset, on_event=emit if rank == 0 else (lambda event: None),
                          clock_start=clock_start, dist=group)
        result = session.run()
        if rank == 0:
            conn.send(("result", result))
    except (RadsegError, ValueError) as exc:
        conn.send(("error", ("value" if isinstance(exc, ValueError) and not isinstance(exc, RadsegError) else "radseg",
                             str(exc))))
        code = 1
    except BaseException as exc:  # noqa: BLE001 - reported by the launcher, with the rank
        import traceback

        conn.send(("error", ("crash", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")))
        code = 1
    finally:
        try:
            if dist.is_initialized() and code == 0:
                dist.destroy_process_group()
        finally:
            conn.close()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # no interpreter teardown that could wait on a dead peer


def launch(config, payload, *, on_event: Callable[[dict], None], clock_start: float):
    """Run the training over ``config.nproc`` processes; returns rank 0's TrainResult."""
    import multiprocessing as mp
    from multiprocessing.connection import wait

    import torch.distributed as dist

    backend, _ = check(config)
    ctx = mp.get_context("spawn")
    timeout = datetime.timedelta(seconds=TIMEOUT_S)
    store = dist.TCPStore("127.0.0.1", 0, None, True, timeout=timeout, wait_for_workers=False)
    stop = ctx.Event()
    job = _Job(config.nproc, backend, store.port, config, payload, stop,
               time.time() - (time.perf_counter() - clock_start), TIMEOUT_S)
    pipes, ends, procs = [], [], []
    for rank in range(config.nproc):
        mine, theirs = ctx.Pipe()
        procs.append(ctx.Process(target=_worker, args=(rank, job, theirs, os.getpid()), name=f"radseg-train-{rank}"))
        pipes.append(mine)
        ends.append(theirs)
    # Signals as one process takes them: SIGINT, or a SIGTERM that is not ignored, becomes a stop every
    # rank agrees on (a second one kills the workers); an ignored one stays ignored. Workers start with
    # SIGINT ignored (kept through exec, so Python never installs its handler there, even while importing).
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    received: list[int] = []

    def on_signal(signum, frame):
        received.append(signum)
        stop.set()
        if len(received) > 1:
            raise KeyboardInterrupt

    _install({signal.SIGINT: signal.SIG_IGN})
    result, errors, failed = None, {}, None
    try:
        for proc, theirs in zip(procs, ends):
            proc.start()
            theirs.close()  # the worker holds it now: its exit reads as end-of-file here
        _install({signum: on_signal for signum, handler in previous.items()
                  if handler is not None and handler is not signal.SIG_IGN})
        live = {rank: pipe for rank, pipe in enumerate(pipes)}
        while live or any(p.exitcode is None for p in procs):
            ready = wait(list(live.values()) + [p.sentinel for p in procs if p.exitcode is None], timeout=1.0)
            for rank, pipe in list(live.items()):
                if pipe not in ready:
                    continue
                try:
                    kind, message = pipe.recv()
                except (EOFError, OSError):
                    del live[rank]
                    continue
                if kind == "event":
                    try:
                        on_event(message)
                    except KeyboardInterrupt:  # as in one process: stop (here, at the next step on every rank)
                        stop.set()
                    finally:
                        pipe.send("ok")
                elif kind == "result":
                    result = message
                else:
                    errors.setdefault(rank, message)
            failed = next((rank for rank, proc in enumerate(procs) if proc.exitcode not in (None, 0)), None)
            if failed is not None:
                break
    except BaseException:
        _kill(procs)
        raise
    finally:
        _install({signum: handler for signum, handler in previous.items() if handler is not None})
    try:
        if failed is not None:
            _kill(procs)
            for rank, pipe in enumerate(pipes):  # a failing rank's message may still be in its pipe
                while rank not in errors and _poll(pipe):
                    try:
                        kind, message = pipe.recv()
                    except (EOFError, OSError):
                        break
                    if kind == "error":
                        errors[rank] = message
            if received and not any(kind in ("radseg", "value") for kind, _ in errors.values()):
                raise KeyboardInterrupt  # asked to stop, and a worker went down with it (e.g. still starting)
            raise _failure(procs, failed, errors)
        if result is None:
            raise DistributedError("training process 0 ended without a result")
        return result
    finally:
        for signum in dict.fromkeys(received):
            if previous[signum] is signal.SIG_DFL:  # one process would have died of it: so does this one, now
                os.kill(os.getpid(), signum)


def _poll(pipe) -> bool:
    try:
        return pipe.poll(0.2)
    except (EOFError, OSError):
        return False


def _exit_code(proc) -> int:
    code = proc.exitcode or 1
    return 128 - code if code < 0 else code


def _failure(procs, failed: int, errors: dict) -> Exception:
    # a rank that explains itself first: a peer's "connection closed" is only an echo of its failure
    for rank in sorted(errors, key=lambda r: (errors[r][0] not in ("radseg", "value"), r != failed, r)):
        kind, message = errors[rank]
        if kind == "value":
            return ValueError(message)
        if kind == "radseg":
            return DistributedError(message, _exit_code(procs[rank]))
        return DistributedError(f"training process {rank} failed: {message}", _exit_code(procs[rank]))
    code = procs[failed].exitcode
    how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
    return DistributedError(f"training process {failed} {how}", _exit_code(procs[failed]))


def _kill(procs) -> None:
    for proc in procs:
        if proc.exitcode is None:
            proc.kill()
    for proc in procs:
        proc.join(timeout=10)


def _install(handlers: dict) -> dict:
    """Set signal handlers (main thread only); returns the previous ones."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}
    return {signum: signal.signal(signum, handler) for signum, handler in handlers.items()}
