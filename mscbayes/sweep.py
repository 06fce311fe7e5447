"""Sweeps of independent replicates (SBC, model recovery, design ranking) on Dask distributed, resumable.

    run_sweep(fn, tasks, out_dir, manifest=..., scheduler=None, workers=None) -> DataFrame, one row per task

Each `Task` is one replicate: a key (file-name safe, unique) and a picklable payload; ``fn(payload)`` is a
module-level function returning one row (a dict of JSON-able scalars). The driver streams results back as they
finish and writes each atomically to ``out_dir/tasks/<key>.json``, so a sweep that is interrupted (``kill -9``,
a lost worker, a closed laptop) restarts with the same command and does only what is missing. Dask runs the
tasks: a `LocalCluster` of worker processes by default, an existing cluster given by its scheduler address, or
``scheduler="serial"`` (this process, no Dask). A worker is a process, so each compiles a model once and
reuses it for its later tasks (`mscbayes.inference` keeps compiled models per process).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import socket
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .provenance import atomic_write

__all__ = ["Task", "SweepError", "run_sweep", "default_workers"]

log = logging.getLogger(__name__)

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
MANIFEST = "sweep.json"
TASKS = "tasks"
FAILED = "failed"


class SweepError(RuntimeError):
    """A sweep cannot start (its folder holds another sweep, a bad task list) or some tasks failed."""


@dataclass(frozen=True)
class Task:
    """One replicate: `key` names its result file (letters, digits, '.', '_', '-'); `payload` is what `fn` gets."""

    key: str
    payload: Mapping[str, Any]


def default_workers() -> int:
    """Worker processes of a local cluster: one per core, at most 2 (each holds a compiled model, ~1 GB)."""
    return max(1, min(2, os.cpu_count() or 1))


def _call(fn: Callable[[Mapping[str, Any]], Mapping[str, Any]], task: Task) -> dict:
    """Run one task where it is scheduled; failures come back as a row with the traceback, not an exception,
    so one bad replicate does not stop the others."""
    start = time.perf_counter()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    try:
        row = dict(fn(task.payload))
    except Exception:  # reported by the driver with its key; the other tasks go on
        return {"key": task.key, "_error": traceback.format_exc(), "worker": worker}
    row.update(key=task.key, seconds=round(time.perf_counter() - start, 3), worker=worker)
    return row


def _check_tasks(tasks: Sequence[Task]) -> None:
    seen: set[str] = set()
    for t in tasks:
        if not isinstance(t, Task):
            raise SweepError(f"a sweep takes Task objects, got {type(t).__name__}")
        if not _KEY.match(t.key):
            raise SweepError(f"task key {t.key!r} is not a file name (letters, digits, '.', '_', '-')")
        if t.key in seen:
            raise SweepError(f"task key {t.key!r} appears twice")
        seen.add(t.key)


def _plain(value: Any) -> Any:
    """JSON form of a row value (numpy scalars become Python numbers; NaN stays NaN)."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value


def _write_json(path: Path, data: Mapping[str, Any], *, force: bool) -> None:
    text = json.dumps({k: _plain(v) for k, v in data.items()}, indent=1, sort_keys=True)
    atomic_write(path, lambda tmp: tmp.write_text(text), force=force, what="sweep result")


def _claim_folder(out_dir: Path, manifest: Mapping[str, Any]) -> None:
    """Record `manifest` in a new folder, or check that the folder holds the same sweep."""
    path = out_dir / MANIFEST
    wanted = json.loads(json.dumps(manifest, default=str))
    if path.exists():
        try:
            stored = json.loads(path.read_text())["manifest"]
        except (OSError, ValueError, KeyError, TypeError):
            raise SweepError(f"{path}: not a sweep record of mscbayes; choose another --out folder") from None
        if stored != wanted:
            changed = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
            raise SweepError(f"{out_dir} holds another sweep (it differs in {', '.join(changed)}); "
                             "choose another --out folder, or remove that one to start afresh")
        return
    from . import __version__

    _write_json(path, {"manifest": wanted, "mscbayes": __version__,
                       "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, force=False)


def _finished(out_dir: Path, tasks: Sequence[Task]) -> dict[str, dict]:
    """Results already on disk for these tasks (a file that cannot be read is redone, and said so)."""
    done = {}
    for t in tasks:
        path = out_dir / TASKS / f"{t.key}.json"
        if not path.exists():
            continue
        try:
            done[t.key] = json.loads(path.read_text())
        except (OSError, ValueError):
            log.warning("sweep: %s cannot be read; task %s is run again", path, t.key)
    return done


@contextmanager
def _client(scheduler: str | None, workers: int | None):
    """A Dask client: on a new local cluster of worker processes, or connected to `scheduler`."""
    from dask.distributed import Client, LocalCluster

    for name in ("distributed", "bokeh", "tornado"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if scheduler:
        client = Client(scheduler, timeout="30s")
        try:
            yield client
        finally:
            client.close()
        return
    n = workers or default_workers()
    with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        yield client


def _results(fn, todo: Sequence[Task], scheduler: str | None, workers: int | None):
    """Yield each task's row as it finishes."""
    if scheduler == "serial":
        for t in todo:
            yield _call(fn, t)
        return
    from dask.distributed import as_completed

    with _client(scheduler, workers) as client:
        # a task on a worker that dies is rescheduled by Dask on another (up to distributed.scheduler.allowed-failures)
        futures = [client.submit(_call, fn, t, key=f"mscbayes-sweep-{t.key}-{os.getpid()}", pure=False) for t in todo]
        for future in as_completed(futures):
            yield future.result()
            future.release()


def _eta(seconds: float, done: int, total: int) -> str:
    if done == 0 or done >= total:
        return ""
    left = seconds / done * (total - done)
    return f", about {math.ceil(left / 60)} min left" if left >= 60 else f", about {left:.0f} s left"


def run_sweep(fn: Callable[[Mapping[str, Any]], Mapping[str, Any]], tasks: Sequence[Task], out_dir: str | os.PathLike,
              *, manifest: Mapping[str, Any] | None = None, scheduler: str | None = None, workers: int | None = None,
              progress: bool = True, what: str = "replicates") -> pd.DataFrame:
    """Run ``fn(task.payload)`` for every task not yet finished in `out_dir`; return all rows in task order.

    `manifest` identifies the sweep (kind, design, settings — not the number of replicates, so a sweep can be
    extended); a folder that holds another sweep is refused. `scheduler`: None for a local cluster of
    `workers` processes (default `default_workers()`), a Dask scheduler address ("tcp://host:8786"; the workers
    must have mscbayes installed), or "serial". A task whose `fn` raised is not recorded as finished: the others
    complete, its traceback goes to ``out_dir/failed/<key>.txt`` and `SweepError` names it (re-run to retry).
    Columns: ``key``, the rows' own, ``seconds`` (of the task) and ``worker`` (host:pid).
    """
    tasks = list(tasks)
    _check_tasks(tasks)
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise SweepError(f"workers must be a positive integer, got {workers!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _claim_folder(out_dir, dict(manifest or {}))
    (out_dir / TASKS).mkdir(exist_ok=True)
    rows = _finished(out_dir, tasks)
    todo = [t for t in tasks if t.key not in rows]
    if rows and progress:
        log.info("%d of %d %s already done in %s; running the other %d", len(rows), len(tasks), what, out_dir,
                 len(todo))
    where = "in this process" if scheduler == "serial" else (
        f"on the Dask cluster at {scheduler}" if scheduler else f"on {workers or default_workers()} local workers")
    if todo and progress:
        log.info("running %d %s %s…", len(todo), what, where)
    failed: list[str] = []
    start = time.perf_counter()
    for n, row in enumerate(_results(fn, todo, scheduler, workers), start=1):
        key = row["key"]
        if "_error" in row:
            failed.append(key)
            path = out_dir / FAILED / f"{key}.txt"
            path.parent.mkdir(exist_ok=True)
            atomic_write(path, lambda tmp, text=row["_error"]: tmp.write_text(text), force=True, what="traceback")
            log.warning("%s %s failed: %s", what, key, row["_error"].strip().splitlines()[-1])
        else:
            _write_json(out_dir / TASKS / f"{key}.json", row, force=True)
            rows[key] = row
            stale = out_dir / FAILED / f"{key}.txt"
            if stale.exists():
                stale.unlink()
        if progress:
            log.info("%s: %d of %d done%s", what, len(rows), len(tasks), _eta(time.perf_counter() - start, n, len(todo)))
    if failed:
        raise SweepError(f"{len(failed)} of {len(tasks)} {what} failed ({', '.join(failed[:5])}"
                         f"{', …' if len(failed) > 5 else ''}); their tracebacks are in {out_dir / FAILED}; the "
                         f"{len(rows)} finished are kept: run the same command again to retry the others")
    table = pd.DataFrame([rows[t.key] for t in tasks])
    front = ["key"] + [c for c in table.columns if c not in ("key", "seconds", "worker")]
    return table[front + ["seconds", "worker"]] if len(table) else table
