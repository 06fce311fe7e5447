"""The sweep engine (mscbayes.sweep): results per task on disk, resumable, on Dask or in this process.

Replicates of SBC, model recovery and design ranking go through `run_sweep`; these tests use a trivial task
(tests/sweep_tasks.py) so they check the engine, not a model.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mscbayes.sweep import SweepError, Task, run_sweep
from tests.sweep_tasks import calls_of, square

ROOT = Path(__file__).resolve().parents[1]


def _tasks(calls, xs, **extra):
    return [Task(f"x{x:02d}", {"x": x, "calls": str(calls), **extra}) for x in xs]


@pytest.fixture
def calls(tmp_path):
    d = tmp_path / "calls"
    d.mkdir()
    return d


def test_serial_sweep_returns_rows_in_task_order_and_a_rerun_does_only_what_is_missing(tmp_path, calls):
    out = tmp_path / "sweep"
    table = run_sweep(square, _tasks(calls, [3, 1, 2]), out, manifest={"kind": "test"}, scheduler="serial")
    assert list(table["key"]) == ["x03", "x01", "x02"]
    assert list(table["square"]) == [9, 1, 4]
    assert list(table.columns[-2:]) == ["seconds", "worker"]
    assert json.loads((out / "tasks" / "x02.json").read_text())["square"] == 4
    # extended by two replicates: the three finished ones are read back, not run again
    table = run_sweep(square, _tasks(calls, [3, 1, 2, 4, 5]), out, manifest={"kind": "test"}, scheduler="serial")
    assert list(table["square"]) == [9, 1, 4, 16, 25]
    assert calls_of(calls) == {1: 1, 2: 1, 3: 1, 4: 1, 5: 1}


def test_a_folder_holding_another_sweep_is_refused_and_kept(tmp_path, calls):
    out = tmp_path / "sweep"
    run_sweep(square, _tasks(calls, [1]), out, manifest={"kind": "sbc", "family": "fate"}, scheduler="serial")
    before = (out / "sweep.json").read_text()
    with pytest.raises(SweepError, match=r"holds another sweep \(it differs in family\)"):
        run_sweep(square, _tasks(calls, [1]), out, manifest={"kind": "sbc", "family": "treg"}, scheduler="serial")
    assert (out / "sweep.json").read_text() == before
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "sweep.json").write_text("not json")
    with pytest.raises(SweepError, match="not a sweep record"):
        run_sweep(square, _tasks(calls, [1]), tmp_path / "other", manifest={}, scheduler="serial")


@pytest.mark.parametrize("keys, message", [(["a/b"], "not a file name"), (["a", "a"], "appears twice"),
                                           ([".hidden"], "not a file name")])
def test_bad_task_keys_are_refused_before_anything_runs(tmp_path, calls, keys, message):
    tasks = [Task(k, {"x": 1, "calls": str(calls)}) for k in keys]
    with pytest.raises(SweepError, match=message):
        run_sweep(square, tasks, tmp_path / "s", scheduler="serial")
    assert not any(calls.iterdir())


def test_a_failing_task_does_not_stop_the_others_and_is_retried_by_a_rerun(tmp_path, calls):
    out, flag = tmp_path / "sweep", tmp_path / "fixed"
    tasks = _tasks(calls, [1, 2, 3])
    tasks[1] = Task("x02", {**tasks[1].payload, "fail_unless": str(flag)})
    with pytest.raises(SweepError, match=r"1 of 3 replicates failed \(x02\).*the 2 finished are kept"):
        run_sweep(square, tasks, out, scheduler="serial")
    assert sorted(p.name for p in (out / "tasks").iterdir()) == ["x01.json", "x03.json"]
    assert "asked to fail" in (out / "failed" / "x02.txt").read_text()
    flag.touch()
    table = run_sweep(square, tasks, out, scheduler="serial")
    assert list(table["square"]) == [1, 4, 9]
    assert calls_of(calls) == {1: 1, 2: 2, 3: 1}
    assert not (out / "failed" / "x02.txt").exists()


def _when_results(folder: Path, n: int, action, timeout: float = 120.0) -> threading.Thread:
    """Run `action()` in a thread as soon as `folder` holds `n` result files."""
    def watch():
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if folder.exists() and len(list(folder.glob("*.json"))) >= n:
                action()
                return
            time.sleep(0.05)
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_local_cluster_of_two_workers_survives_losing_one_mid_sweep(tmp_path, calls):
    """kill -9 one of two worker processes after the first result: Dask runs its task again on the restarted
    worker; every task ends with one result and at most one task (the one the dead worker held) ran twice."""
    from dask.distributed import Client, LocalCluster

    out = tmp_path / "sweep"
    tasks = _tasks(calls, range(8), sleep=0.6)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        victim = sorted(client.run(os.getpid).values())[0]
        left_at_kill = []

        def kill():
            left_at_kill.append(8 - len(list((out / "tasks").glob("*.json"))))
            os.kill(victim, signal.SIGKILL)

        watcher = _when_results(out / "tasks", 1, kill)
        table = run_sweep(square, tasks, out, manifest={"kind": "test"}, scheduler=cluster.scheduler_address)
        watcher.join(5)
    assert left_at_kill and left_at_kill[0] >= 3          # killed mid-sweep, not after it
    assert list(table["square"]) == [x * x for x in range(8)]
    assert len(list((out / "tasks").glob("*.json"))) == 8
    counts = calls_of(calls)
    assert set(counts) == set(range(8)) and sum(counts.values()) <= 9
    assert victim not in set(table["pid"][table["x"].map(lambda x: counts[x] == 2)])


_DRIVER = """
import sys
from mscbayes.sweep import Task, run_sweep
from tests.sweep_tasks import square
calls, out = sys.argv[1], sys.argv[2]
run_sweep(square, [Task(f"x{x:02d}", {"x": x, "calls": calls, "sleep": 0.4}) for x in range(10)], out,
          manifest={"kind": "test"}, scheduler="serial")
"""


def test_a_sweep_killed_with_kill_9_restarts_without_redoing_finished_replicates(tmp_path, calls):
    out = tmp_path / "sweep"
    proc = subprocess.Popen([sys.executable, "-c", _DRIVER, str(calls), str(out)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    watcher = _when_results(out / "tasks", 3, lambda: proc.send_signal(signal.SIGKILL))
    proc.wait(120)
    watcher.join(5)
    assert proc.returncode == -signal.SIGKILL
    finished = {int(p.stem[1:]) for p in (out / "tasks").glob("*.json")}
    assert 3 <= len(finished) < 10
    table = run_sweep(square, [Task(f"x{x:02d}", {"x": x, "calls": str(calls), "sleep": 0.4}) for x in range(10)],
                      out, manifest={"kind": "test"}, scheduler="serial")
    assert list(table["square"]) == [x * x for x in range(10)]
    counts = calls_of(calls)
    assert all(counts[x] == 1 for x in finished)              # none of the finished ones ran again
    assert sum(counts.values()) <= 10 + 1                     # only the one in flight at the kill ran twice
