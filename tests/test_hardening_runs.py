"""Hardening of run directories and output files: interrupted, concurrent and misdirected runs.

Temporaries are removed on SIGTERM and by the next run when their process died; an existing run
is never replaced without ``--force`` (also one that appears while the run trains), and with it
only once the new run is complete, and only if it is a run; an output never overwrites its
input; the umask decides the permissions; plot workers die with their parent.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_bad_input import assert_one_line_error

from mva.errors import InputError
from mva.io.writers import TableWriter, atomic_directory, atomic_path, rename_noreplace

MVA = Path(sys.executable).with_name("mva")


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _fake_run(path: Path, tag: str = "old") -> Path:
    (path / "models").mkdir(parents=True)
    (path / "models" / "manifest.json").write_text("{}")
    (path / "metrics.json").write_text(json.dumps({"tag": tag}))
    return path


def _siblings(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f".{path.name}*"))


# --------------------------------------------------------------------------- 6b. temporaries


def test_temporaries_carry_the_pid(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "out.root") as tmp:
        assert tmp.name.startswith(f".out.root.tmp-{os.getpid()}-")
    with atomic_directory(tmp_path / "run") as tmp:
        assert tmp.name.startswith(f".run.tmp-{os.getpid()}-")
    assert _siblings(tmp_path / "out.root") == [] and _siblings(tmp_path / "run") == []


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path: Path) -> None:
    dead = _dead_pid()
    stale_file = tmp_path / f".out.root.tmp-{dead}-abc.root"
    stale_file.write_bytes(b"partial")
    live_file = tmp_path / f".out.root.tmp-{os.getppid()}-abc.root"  # a live process's
    live_file.write_bytes(b"in progress")
    other = tmp_path / f".other.root.tmp-{dead}-abc.root"  # another output's: not ours
    other.write_bytes(b"x")
    with atomic_path(tmp_path / "out.root") as tmp:
        tmp.write_bytes(b"new")
    assert not stale_file.exists() and live_file.exists() and other.exists()

    stale_dir = tmp_path / f".run.tmp-{dead}-xyz"
    (stale_dir / "models").mkdir(parents=True)
    live_dir = tmp_path / f".run.tmp-{os.getppid()}-xyz"
    live_dir.mkdir()
    with atomic_directory(tmp_path / "run"):
        pass
    assert not stale_dir.exists() and live_dir.exists()


def test_failed_close_never_renames_a_partial_file(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "out.root"
    writer = TableWriter(target)
    with pytest.raises(KeyboardInterrupt):  # e.g. SIGTERM while the file is closed
        with writer:
            writer.write("events", {"x": np.arange(10.0)})

            def interrupted() -> None:
                raise KeyboardInterrupt

            monkeypatch.setattr(writer._file, "close", interrupted)
    assert not target.exists() and _siblings(target) == []


def test_sigterm_during_apply_leaves_nothing_behind(toy_run, tmp_path: Path) -> None:
    import uproot

    manifest = json.loads((toy_run.run_dir / "models" / "manifest.json").read_text())
    n = 2_000_000
    rng = np.random.default_rng(0)
    big = tmp_path / "big.root"
    with uproot.recreate(big) as f:
        f.mktree("events", {name: np.float64 for name in manifest["features"]})
        f["events"].extend({name: rng.normal(size=n) for name in manifest["features"]})
    out = tmp_path / "out.root"
    proc = subprocess.Popen([str(MVA), "-q", "apply", toy_run.run_dir, big, "--tree", "events",
                             "--step-size", "1000", "--output", out],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, MPLBACKEND="Agg"))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not _siblings(out) and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None and _siblings(out), proc.stderr.read() if proc.poll() else ""
    time.sleep(1.0)  # into the chunks
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == "mva: terminated (SIGTERM)"
    assert not out.exists() and _siblings(out) == []


# --------------------------------------------------------------------------- 7. plot workers


def _death_signal() -> int:
    import ctypes

    from mva.evaluation.figures import PR_GET_PDEATHSIG

    value = ctypes.c_int(-1)
    ctypes.CDLL(None, use_errno=True).prctl(PR_GET_PDEATHSIG, ctypes.byref(value), 0, 0, 0)
    return value.value


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux only")
def test_plot_workers_get_a_death_signal() -> None:
    from mva.evaluation.figures import Plotter

    plotter = Plotter(parallel=True)
    try:
        plotter.submit([])  # starts the pool
        assert plotter._pool is not None
        # the workers start at nice 19 and warm matplotlib up first: on a machine busy with
        # other work they get about 1 % of a core, so the answer may take minutes
        assert plotter._pool.submit(_death_signal).result(timeout=600) == signal.SIGKILL
    finally:
        plotter.close()
    assert _death_signal() == 0  # this process is untouched


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux only")
def test_plot_workers_die_with_a_killed_parent(tmp_path: Path) -> None:
    script = (
        "import os, time\n"
        "from mva.evaluation.figures import Plotter\n"
        "p = Plotter(parallel=True)\n"
        "p.submit([])\n"
        "fs = [p._pool.submit(time.sleep, 300) for _ in range(2)]\n"
        "time.sleep(1.0)\n"
        "print(' '.join(str(pid) for pid in p._pool._processes), flush=True)\n"
        "time.sleep(300)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(x) for x in proc.stdout.readline().split()]
        assert pids
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    deadline = time.monotonic() + 20
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in pids if _alive(pid)]
        time.sleep(0.1)
    for pid in alive:  # clean up before failing
        os.kill(pid, signal.SIGKILL)
    assert not alive, f"plot workers {alive} outlived their killed parent"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (not yet reaped by init) is dead
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# --------------------------------------------------------------------------- 8. no replace


def test_a_run_that_appears_meanwhile_is_not_replaced(tmp_path: Path) -> None:
    target = tmp_path / "run"
    with pytest.raises(InputError, match="already exists"):
        with atomic_directory(target) as tmp:
            (tmp / "metrics.json").write_text('{"tag": "new"}')
            _fake_run(target, "other")  # the other `mva train -o run` finished first
    assert json.loads((target / "metrics.json").read_text()) == {"tag": "other"}
    assert _siblings(target) == []


def test_an_empty_directory_that_appears_meanwhile_is_not_replaced(tmp_path: Path) -> None:
    target = tmp_path / "run"
    with pytest.raises(InputError, match="already exists"):
        with atomic_directory(target):
            target.mkdir()
    assert target.is_dir() and not any(target.iterdir())


def test_rename_noreplace(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(FileExistsError):
        rename_noreplace(tmp_path / "a", tmp_path / "b")
    rename_noreplace(tmp_path / "a", tmp_path / "c")
    assert (tmp_path / "c").is_dir() and not (tmp_path / "a").exists()


# --------------------------------------------------------------------------- 9. force swap


def test_force_keeps_the_old_run_until_the_new_is_complete(tmp_path: Path) -> None:
    target = _fake_run(tmp_path / "run")
    with pytest.raises(OSError, match="No space"):
        with atomic_directory(target, force=True) as tmp:
            (tmp / "metrics.json").write_text('{"tag": "new"}')
            raise OSError(28, "No space left on device")
    assert json.loads((target / "metrics.json").read_text()) == {"tag": "old"}
    with atomic_directory(target, force=True) as tmp:
        _fake_run(tmp / "x")
        (tmp / "metrics.json").write_text('{"tag": "new"}')
    assert json.loads((target / "metrics.json").read_text()) == {"tag": "new"}
    assert _siblings(target) == []


def test_force_puts_the_old_run_back_when_the_swap_fails(tmp_path: Path, monkeypatch) -> None:
    import mva.io.writers as writers

    target = _fake_run(tmp_path / "run")
    real = writers.rename_noreplace
    calls = []

    def failing(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # the rename of the new run into place, after the old went aside
            raise OSError(5, "Input/output error")
        real(src, dst)

    monkeypatch.setattr(writers, "rename_noreplace", failing)
    with pytest.raises(OSError, match="Input/output"):
        with atomic_directory(target, force=True) as tmp:
            (tmp / "metrics.json").write_text('{"tag": "new"}')
    assert json.loads((target / "metrics.json").read_text()) == {"tag": "old"}
    assert _siblings(target) == []


def test_report_failure_with_force_keeps_the_previous_run(toy_run, tmp_path: Path, mva,
                                                           monkeypatch) -> None:
    import importlib

    report_module = importlib.import_module("mva.report")
    run = tmp_path / "run"
    shutil.copytree(toy_run.run_dir, run)
    before = (run / "metrics.json").read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report_module, "write_report", disk_full)
    from conftest import FAST_SETTINGS

    sets = [a for s in FAST_SETTINGS for a in ("--set", s)]
    res = mva("-q", "train", toy_run.config, "--output", run, "--force", *sets)
    assert res.returncode != 0
    assert (run / "metrics.json").read_bytes() == before
    assert (run / "report.html").is_file()
    assert _siblings(run) == []


def test_the_report_names_the_final_directory(toy_run) -> None:
    text = (toy_run.run_dir / "report.html").read_text()
    assert ".run.tmp-" not in text
    assert str(toy_run.run_dir.resolve()) in text


# --------------------------------------------------------------------------- 10. only runs


def test_force_refuses_to_replace_a_directory_that_is_not_a_run(toy_example, tmp_path: Path,
                                                                 mva) -> None:
    proj = tmp_path / "proj"
    shutil.copytree(toy_example, proj, ignore=shutil.ignore_patterns("run"))
    res = mva("train", proj / "config.yaml", "-o", proj, "--force")
    assert_one_line_error(res, str(proj), "not an mva run directory")
    assert (proj / "data" / "toy.root").is_file() and (proj / "config.yaml").is_file()
    assert _siblings(proj) == []


def test_force_replaces_an_empty_directory_and_refuses_a_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with atomic_directory(empty, force=True) as tmp:
        (tmp / "metrics.json").write_text("{}")
    assert (empty / "metrics.json").is_file()
    afile = tmp_path / "afile"
    afile.write_text("data")
    with pytest.raises(InputError, match="afile"):
        with atomic_directory(afile, force=True):
            pass
    assert afile.read_text() == "data"


def test_force_refuses_a_directory_that_stopped_being_a_run(tmp_path: Path) -> None:
    target = _fake_run(tmp_path / "run")
    with pytest.raises(InputError, match="not an mva run directory"):
        with atomic_directory(target, force=True):
            shutil.rmtree(target / "models")
            (target / "metrics.json").unlink()
            (target / "precious.txt").write_text("data")
    assert (target / "precious.txt").read_text() == "data"
    assert _siblings(target) == []


# --------------------------------------------------------------------------- 11. own input


def test_apply_refuses_to_overwrite_its_input(toy_run, tmp_path: Path, mva) -> None:
    data = tmp_path / "in.root"
    shutil.copy(toy_run.data, data)
    before = data.read_bytes()
    res = mva("apply", toy_run.run_dir, data, "--tree", "TreeS", "-o", data)
    assert_one_line_error(res, str(data), "one of the inputs")
    res = mva("apply", toy_run.run_dir, str(tmp_path / "*.root"), "--tree", "TreeS",
              "-o", tmp_path / "." / "in.root")
    assert_one_line_error(res, "one of the inputs")
    assert data.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# --------------------------------------------------------------------------- 12. umask


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_outputs_follow_the_umask(tmp_path: Path, umask: int, monkeypatch) -> None:
    import mva.io.writers as writers

    old = os.umask(umask)
    monkeypatch.setattr(writers, "_UMASK", None)
    try:
        with atomic_path(tmp_path / "out.root") as tmp:
            tmp.write_bytes(b"x")
        with atomic_directory(tmp_path / "run") as tmp:
            (tmp / "metrics.json").write_text("{}")
    finally:
        os.umask(old)
    assert (tmp_path / "out.root").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "run").stat().st_mode & 0o777 == 0o777 & ~umask

