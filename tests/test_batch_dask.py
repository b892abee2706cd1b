"""The batch on real Dask clusters: a LocalCluster of worker processes, and an existing cluster — a
``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1 started here — reached with ``--scheduler``.
Both must give exactly the results of the in-process run (``tests/test_run.py``'s reference)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mrdflow.cli import main
from tests.batch_data import REPO, copy_sample, make_broken_samples, write_panel

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> tuple[Path, Path]:
    """Three good samples and one broken one, and their in-process reference run."""
    folder = tmp_path_factory.mktemp("dask")
    fcs = folder / "fcs"
    for dst, src in {"S1": "DEMO01", "S2": "DEMO02", "S4": "DEMO04"}.items():
        copy_sample(src, dst, fcs)
    make_broken_samples(fcs)
    for p in fcs.glob("BAD*"):
        if not p.name.startswith("BADNAN"):
            p.unlink()
    panel = write_panel(folder)
    ref = folder / "reference"
    assert main(["run", str(panel), "--out", str(ref), "--workers", "0", "--no-reports"]) == 1
    return panel, ref


def _same_results(out: Path, ref: Path) -> None:
    for name in ("results.csv", "populations.csv"):
        assert (out / name).read_bytes() == (ref / name).read_bytes(), name


def test_local_cluster_gives_the_in_process_results(batch, tmp_path, capsys):
    panel, ref = batch
    out = tmp_path / "out"
    environ = dict(os.environ)
    assert main(["run", str(panel), "--out", str(out), "--workers", "2", "--no-reports"]) == 1
    # Dask's nanny writes OMP/MKL/OPENBLAS_NUM_THREADS=1 (and more) into the spawning process's environment and
    # leaves them: a caller's later BLAS calls and subprocesses would run single-threaded (and the simulator's
    # float32 matmul gave other bytes). The run puts the caller's environment back.
    assert dict(os.environ) == environ
    _same_results(out, ref)
    run = json.loads((out / "run.json").read_text())
    assert run["execution"]["mode"] == "local" and run["execution"]["workers"] == 2
    assert run["execution"]["numba_threads"] >= 1
    # each of the two workers built its share of the kernels before the first sample
    assert run["execution"]["kernel_warmup"]["workers"] == 2 and run["execution"]["kernel_warmup"]["problems"] == []
    workers = {s["worker"] for s in run["samples"]}
    assert all(w.startswith("tcp://127.0.0.1:") for w in workers)
    assert "Dask dashboard: http" in capsys.readouterr().out


def test_samples_do_not_wait_for_a_slow_kernel_warm_up(batch, tmp_path, monkeypatch):
    """The warm-up only saves compile time: when it has not finished in time the samples start anyway (queued
    behind it), with the same results."""
    import mrdflow.batch as batch_module

    panel, ref = batch
    monkeypatch.setattr(batch_module, "_WARMUP_WAIT_SECONDS", 0)
    out = tmp_path / "out"
    assert main(["run", str(panel), "--out", str(out), "--workers", "2", "--no-reports"]) == 1
    _same_results(out, ref)
    warmup = json.loads((out / "run.json").read_text())["execution"]["kernel_warmup"]
    assert warmup["workers"] == 2
    assert all(p.startswith("a worker's warm-up was still running") for p in warmup["problems"])


def test_a_sample_whose_worker_dies_is_retried_on_a_new_worker(batch, tmp_path):
    from mrdflow.batch import run_batch
    from tests.batch_data import die_once

    panel, ref = batch
    marker = panel.parent / "fcs" / "S2_T1.worker-died"
    marker.unlink(missing_ok=True)
    out = tmp_path / "out"
    summary = run_batch(panel, out, workers=1, reports=False, task_fn=die_once, echo=lambda s: None)
    assert marker.exists(), "the worker analysing S2 was killed"
    assert int(marker.read_text()) != os.getpid()
    failed = [(r.sample_id, r.error) for r in summary.results if not r.ok]
    assert [sid for sid, _ in failed] == ["BADNAN"], failed  # the errors say why, should another sample fail
    _same_results(out, ref)


def test_existing_cluster_via_scheduler_address(batch, tmp_path):
    panel, ref = batch
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(REPO), "NUMBA_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    procs = []

    def start(*args: str) -> None:
        procs.append(subprocess.Popen([sys.executable, "-m", "dask", *args], cwd=tmp_path, env=env,
                                      start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    try:
        start("scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard")
        for _ in range(2):
            start("worker", address, "--host", "127.0.0.1", "--nthreads", "1", "--no-dashboard",
                  "--death-timeout", "60")
        from distributed import Client

        deadline = time.monotonic() + 90
        while True:  # the scheduler may not listen yet
            try:
                with Client(address, timeout="5s") as client:
                    client.wait_for_workers(2, timeout=max(1.0, deadline - time.monotonic()))
                break
            except OSError:
                assert time.monotonic() < deadline, "the test cluster did not start within 90 s"
                time.sleep(0.5)
        out = tmp_path / "out"
        assert main(["run", str(panel), "--out", str(out), "--scheduler", address]) == 1
        _same_results(out, ref)
        run = json.loads((out / "run.json").read_text())
        assert {k: run["execution"][k] for k in ("mode", "address", "workers")} == \
            {"mode": "scheduler", "address": address, "workers": 2}
        assert len({s["worker"] for s in run["samples"]}) >= 1
        # the reports were rendered on the workers and written to the shared output folder
        assert {p.name for p in (out / "report").iterdir()} == {"index.html", "S1.html", "S2.html", "S4.html",
                                                                "BADNAN.html"}
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=15)


@pytest.mark.skipif("MALLOC_TRIM_THRESHOLD_" in os.environ, reason="MALLOC_TRIM_THRESHOLD_ is exported in this "
                    "shell; workers inherit it, as documented")
def test_local_workers_keep_glibc_dynamic_mmap_threshold(batch, tmp_path):
    # Dask's nanny would export MALLOC_TRIM_THRESHOLD_=65536, which turns glibc's dynamic mmap threshold off and
    # made every sample's 20 MB arrays page-fault in afresh (25 % slower); run_batch's workers spawn without it
    from mrdflow.batch import run_batch
    from tests.batch_data import with_worker_env

    panel, _ = batch
    summary = run_batch(panel, tmp_path / "out", workers=1, reports=False, task_fn=with_worker_env,
                        echo=lambda s: None)
    ok = [r for r in summary.results if r.ok]
    assert ok and all(r.details["worker_malloc_trim"] is None for r in ok)
    assert "MALLOC_TRIM_THRESHOLD_" not in os.environ  # nor did the nanny leave it in this process
