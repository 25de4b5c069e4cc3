"""The scale-out engine and sharding: parts cover every item once; Ray gives the local engine's results,
retries an item whose worker was killed, loads the state once per actor; a missing Ray names the extra."""

from __future__ import annotations

import builtins
import os
import random
import signal
from pathlib import Path

import pytest

from radseg.errors import RadsegError
from radseg.scale.engine import RAY_INSTALL, EngineOptions, map_jobs, map_jobs_with_state
from radseg.scale.parts import parse_part, select_part

ray = pytest.importorskip("ray", reason="Ray (radseg[scale]) not installed")


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray (2 CPUs plus the read slot) for this module; the engine joins it and leaves it running."""
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False, object_store_memory=256 * 1024**2)
    yield EngineOptions("ray", workers=2)
    ray.shutdown()


# -- parts --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_parts_cover_every_item_exactly_once_and_balance(n):
    items = [f"case{k:03d}" for k in range(23)]
    parts = [select_part(items, (k, n), key=str) for k in range(1, n + 1)]
    assert sorted(sum(parts, [])) == sorted(items)
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_parts_do_not_depend_on_listing_order():
    items = [f"img{k}" for k in range(40)]
    shuffled = random.Random(3).sample(items, len(items))
    for k in (1, 2, 3):
        assert sorted(select_part(items, (k, 3), key=str)) == sorted(select_part(shuffled, (k, 3), key=str))
    # part 1/3 takes ranks 0, 3, 6 ... of the sorted keys (by hand)
    assert sorted(select_part(shuffled, (1, 3), key=str)) == sorted(sorted(items)[0::3])


@pytest.mark.parametrize("text, problem", [("3", "K/N"), ("0/2", "between 1 and N"), ("3/2", "between 1 and N"),
                                           ("a/b", "whole numbers"), ("1/0", "N >= 1")])
def test_bad_part_is_named(text, problem):
    with pytest.raises(ValueError, match=problem):
        parse_part(text)


def test_duplicate_keys_are_refused():
    with pytest.raises(ValueError, match="unique key"):
        select_part(["a", "a"], (1, 2), key=str)


# -- engine ---------------------------------------------------------------------------------------------------

def _square_or_error(job):
    if job == 4:
        return {"job": job, "error": "bad item"}
    return {"job": job, "value": job * job}


def _die_once(job):
    """Kill this worker process the first time item 3 is seen (a marker file remembers it)."""
    marker, value = job
    if value == 3 and not Path(marker).exists():
        Path(marker).touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return value * 10


def _process_id():
    return os.getpid()


def _tag_with_state(state, job):
    return {"value": _die_once(job), "state": state}


def _double(job):
    return job * 2 if job != 5 else {"error": "unreadable"}


def test_ray_returns_the_local_results_including_failures(local_ray):
    jobs = list(range(9))
    local = dict(map_jobs(_square_or_error, jobs, EngineOptions(workers=1)))
    pooled = dict(map_jobs(_square_or_error, jobs, EngineOptions(workers=2)))
    remote = dict(map_jobs(_square_or_error, jobs, local_ray))
    assert local == pooled == remote
    assert remote[4] == {"job": 4, "error": "bad item"} and remote[8]["value"] == 64


def test_a_killed_task_worker_is_retried_and_the_batch_finishes(local_ray, tmp_path):
    results = dict(map_jobs(_die_once, [(str(tmp_path / "marker"), v) for v in range(6)], local_ray))
    assert (tmp_path / "marker").exists()  # the worker really was killed
    assert results == {v: v * 10 for v in range(6)}


def test_actors_load_state_once_and_survive_a_killed_actor(local_ray, tmp_path):
    jobs = [(str(tmp_path / "marker"), v) for v in range(8)]
    results = dict(map_jobs_with_state(_process_id, _tag_with_state, jobs, local_ray, prepare=None))
    assert (tmp_path / "marker").exists()
    assert {k: r["value"] for k, r in results.items()} == {v: v * 10 for v in range(8)}
    # state = the actor's process id: at most the 2 actors plus the one restarted after the kill
    assert 1 <= len({r["state"] for r in results.values()}) <= 3
    assert all(r["state"] != os.getpid() for r in results.values())  # built in the actors, not here


def test_prepare_runs_before_the_actor_and_its_errors_pass_through(local_ray):
    def setup():
        return "model"

    def work(state, prepared):
        return prepared if isinstance(prepared, dict) else {"value": prepared, "state": state}

    results = dict(map_jobs_with_state(setup, work, list(range(7)), local_ray, prepare=_double))
    local = dict(map_jobs_with_state(setup, work, list(range(7)), EngineOptions(), prepare=_double))
    assert results == local
    assert results[5] == {"error": "unreadable"} and results[6] == {"value": 12, "state": "model"}


def test_options_are_checked():
    with pytest.raises(RadsegError, match="--engine must be one of local, ray"):
        EngineOptions("spark")
    with pytest.raises(RadsegError, match="--ray-address needs --engine ray"):
        EngineOptions("local", ray_address="auto")
    assert EngineOptions(workers=5).worker_count(3) == 3


def test_missing_ray_names_the_extra(monkeypatch):
    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'", name="ray")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(RadsegError) as caught:
        list(map_jobs(_double, [1, 2], EngineOptions("ray", workers=1)))
    assert RAY_INSTALL in str(caught.value) and "ray missing" in str(caught.value)
