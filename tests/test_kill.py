"""kill -9 at the worst moments (issue 23, "Resume and leftovers"): during the atomic write a temporary file is
left, and the next write of the same file removes it; during sampling nothing is written; during a multi-fit
`run` the finished fit is kept and a re-run reuses it. The sampling tests run the real command line on the toy
model (tests/toy_cli.py), whose compile takes seconds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mscbayes.provenance import _HOST, atomic_write, remove_stale_temporaries

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 240.0, what: str = "") -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"the process ended (exit {proc.returncode}) before {what}")
        if time.monotonic() > end:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _temporaries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob(".*.tmp*"))


def test_stale_temporaries_of_the_target_are_removed_at_the_next_write(tmp_path):
    target = tmp_path / "table.csv"
    dead = tmp_path / f".table.csv.tmp.{_HOST}.{_dead_pid()}.abc123_x"        # writer killed
    alive = tmp_path / f".table.csv.tmp.{_HOST}.{os.getpid()}.abc123_y"       # a writer still running
    elsewhere = tmp_path / ".table.csv.tmp.otherhost.1.abc123_z"               # another machine's writer
    old_legacy = tmp_path / ".table.csv.tmpk3j_x9ab"                           # mscbayes <= 0.1.0, two days old
    new_legacy = tmp_path / ".table.csv.tmpq8w_e2rt"                           # ... and a fresh one
    other = tmp_path / f".other.csv.tmp.{_HOST}.{_dead_pid()}.abc123_w"       # another target's
    for p in (dead, alive, elsewhere, old_legacy, new_legacy, other):
        p.write_text("half a file")
    os.utime(old_legacy, (time.time() - 2 * 86400,) * 2)
    atomic_write(target, lambda p: p.write_text("a,b\n1,2\n"))
    assert target.read_text() == "a,b\n1,2\n"
    assert not dead.exists() and not old_legacy.exists()
    assert alive.exists() and elsewhere.exists() and new_legacy.exists() and other.exists()
    assert remove_stale_temporaries(target) == []


def test_kill_during_the_write_leaves_a_temporary_that_the_next_write_removes(tmp_path):
    target = tmp_path / "fit.nc"
    started = tmp_path / "started"
    script = (f"import time, pathlib\nfrom mscbayes.provenance import atomic_write\n"
              f"def slow(p):\n    p.write_bytes(b'half')\n    pathlib.Path({str(started)!r}).touch()\n"
              f"    time.sleep(600)\n"
              f"atomic_write({str(target)!r}, slow)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], env=ENV)
    _wait_for(started.exists, proc, 120, "the write started")
    _kill(proc)
    assert not target.exists()
    assert len(_temporaries(tmp_path)) == 1                          # what kill -9 leaves behind ...
    atomic_write(target, lambda p: p.write_bytes(b"whole"))
    assert target.read_bytes() == b"whole" and _temporaries(tmp_path) == []   # ... is gone after the next write


@pytest.mark.slow
def test_kill_during_sampling_leaves_no_file(tmp_path):
    from tests.conftest import make_toy_frame

    make_toy_frame().to_csv(tmp_path / "toy.csv", index=False)
    log = tmp_path / "stderr.txt"
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "tests.toy_cli", "fit", "toy.csv", "--out", "fit.nc",
                                 "--draws", "10000000", "--chains", "1", "--no-fallback"],
                                cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL, stderr=err)
        _wait_for(lambda: "TEST: sampling" in log.read_text(), proc, what="sampling started")
        time.sleep(1.0)
        _kill(proc)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stderr.txt", "toy.csv"]   # no fit, no temporary


@pytest.mark.slow
def test_kill_during_a_run_keeps_the_finished_fit_for_the_rerun(tmp_path):
    from tests.conftest import make_toy_frame

    make_toy_frame().to_csv(tmp_path / "toy.csv", index=False)
    (tmp_path / "toy.toml").write_text(
        '[analysis]\nseed = 1\nfallback = false\nprior_draws = 20\n'
        '[sampler]\ndraws = 100\ntune = 100\nchains = 1\ncores = 1\n'
        '[[datasets]]\nname = "toy"\ncsv = "toy.csv"\nkind = "toy"\n'
        '[[fits]]\ndataset = "toy"\nmodel = "toy"\nname = "first"\n'
        '[[fits]]\ndataset = "toy"\nmodel = "toy"\nname = "second"\nsampler = { draws = 10000000 }\n')
    out = tmp_path / "out"
    manifest = out / "manifest.json"

    def start(log: Path) -> subprocess.Popen:
        with log.open("w") as err:
            return subprocess.Popen([sys.executable, "-m", "tests.toy_cli", "run", "toy.toml", "--out", "out"],
                                    cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL, stderr=err)

    def first_recorded() -> bool:
        return manifest.is_file() and "first · toy" in json.loads(manifest.read_text())["fits"]

    log1 = tmp_path / "run1.txt"
    proc = start(log1)
    _wait_for(first_recorded, proc, what="the first fit in the manifest")
    _kill(proc)                                                   # during the second fit
    fit_file = out / "fits" / "first_toy.nc"
    assert fit_file.is_file() and not (out / "fits" / "second_toy.nc").exists()
    assert _temporaries(out) == []
    mtime = fit_file.stat().st_mtime_ns

    log2 = tmp_path / "run2.txt"
    proc = start(log2)
    _wait_for(lambda: "[2/2]" in log2.read_text(), proc, what="the re-run reached the second fit")
    _kill(proc)
    assert "[1/2] first · toy: reusing fits/first_toy.nc" in log2.read_text()
    assert "[1/2] first · toy: fitting" not in log2.read_text()
    assert fit_file.stat().st_mtime_ns == mtime
