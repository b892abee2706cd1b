"""Running a panel's samples as a batch: Dask scheduling, failure isolation, the store, resume and outputs.

This is the only module that knows Dask. One task per sample (:func:`analyze_task`) gets small arguments — the
sample id, its file paths and the panel path (:class:`SampleTask`); the worker reads the files, runs
:func:`mrdflow.pipeline.analyze_sample`, renders the sample's QC report and sends back only the result without
its plot data (:class:`SampleOutcome`), so event arrays never travel through the scheduler. Results are taken
as they complete (``as_completed``) and each is written to the store in one transaction; the CSVs, the batch
report and ``run.json`` are rebuilt from the store at the end (DESIGN.md §3, §6).

Execution modes (:func:`run_batch`):

* ``scheduler="tcp://host:port"`` — an existing Dask cluster (workers need mrdflow installed and must see the
  same file paths);
* ``workers=N`` (N ≥ 1) — a ``distributed.LocalCluster`` of N single-threaded worker processes, each with
  numba limited to ``cores // N`` threads so the samples running side by side do not oversubscribe the CPU
  (default N: cores, capped by the samples to run and by memory);
* ``workers=0`` — in this process, one sample after the other, through the same task and recording code
  (for tiny batches and tests: no cluster start-up).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

from mrdflow import __version__
from mrdflow.atomic import atomic_write_bytes, atomic_write_text, remove_stale_temporaries
from mrdflow.errors import MrdflowError, PanelError
from mrdflow.provenance import (input_key, panel_hashes, sha256_file, software_versions, utc_now,
                                write_run_json)
from mrdflow.panel_files import text_keywords
from mrdflow.result import SampleResult
from mrdflow.store import DEFAULT_STORE_NAME, ResultStore, StoredSample, write_populations_csv, write_results_csv

__all__ = ["SampleTask", "SampleOutcome", "BatchSummary", "BatchPlan", "analyze_task", "run_batch", "plan_batch",
           "text_keywords", "file_identity",
           "report_file_name", "summary_line", "default_worker_count"]

#: per-sample keywords shown in the report's identity table (when present in the file)
IDENTITY_KEYWORDS = ("$SRC", "TUBE NAME", "$FIL", "$CYT", "$CYTSN", "$INST", "$OP", "$DATE", "$BTIM", "$ETIM",
                     "$TOT", "$PAR")

#: bytes of memory a worker is assumed to need for one large (10 M-event) tube, for the default worker count
WORKER_MEMORY_BYTES = 2 * 1024 ** 3


@dataclass(frozen=True)
class SampleTask:
    """What a worker needs to analyse one sample: small and picklable (paths, never events).

    ``report_path`` None means no report (benchmarks). ``config_sha256`` are the panel/template/CSV digests the
    client saw; the worker checks the panel file it loads still has that digest.
    """

    sample_id: str
    tubes: dict[str, str]
    panel_path: str
    config_sha256: dict[str, str]
    report_path: str | None = None


@dataclass
class SampleOutcome:
    """What comes back from a worker: the result without plot data, identity and timing."""

    result: SampleResult
    tubes: dict[str, str]
    file_sha256: dict[str, str]
    input_key: str | None
    seconds: float
    analysed_at: str
    worker: str
    report_path: str | None = None


@dataclass
class BatchSummary:
    """The outcome of :func:`run_batch`; ``exit_code`` is 0 when every sample is ``ok``, else 1."""

    run_id: str
    output_dir: Path
    store_path: Path
    results: list[SampleResult]
    reused: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def n_failed(self) -> int:
        return sum(1 for r in self.results if not r.ok)

    @property
    def exit_code(self) -> int:
        return 1 if self.n_failed else 0


# ---------------------------------------------------------------------------------------------------------------
# the task (runs on a worker)
# ---------------------------------------------------------------------------------------------------------------
_PANELS: dict[tuple[str, str | None], Any] = {}


def _load_panel_once(path: str, sha: str | None):
    """The panel of this batch, loaded once per worker process (checked against the client's digest)."""
    from mrdflow.panel import load_panel

    key = (path, sha)
    if key not in _PANELS:
        if sha is not None:
            found = sha256_file(path)
            if found != sha:
                raise PanelError(f"{path}: the panel file changed while the batch was running (SHA-256 {found}, "
                                 f"the run started with {sha}); rerun the batch")
        _PANELS[key] = load_panel(path)
    return _PANELS[key]


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"in-process pid {os.getpid()}"


def file_identity(path: str | os.PathLike) -> dict[str, str]:
    """The identity keywords (:data:`IDENTITY_KEYWORDS`) of an FCS file, read from HEADER and TEXT only.

    Unreadable files give ``{}`` (the analysis reports why they failed)."""
    try:
        kw = text_keywords(path)
    except MrdflowError:
        return {}
    return {k: str(kw[k]) for k in IDENTITY_KEYWORDS if k in kw}


def analyze_task(task: SampleTask) -> SampleOutcome:
    """Analyse one sample on a worker: run the pipeline (which hashes its files as it reads them), write its
    report, drop plot data.

    Never raises for a bad sample: any error becomes a ``failed`` result naming it (an :class:`MrdflowError`
    keeps its message; anything else is reported as an internal error with its traceback in ``details``).
    """
    t0 = time.perf_counter()
    analysed_at = utc_now()
    files = [task.tubes[t] for t in task.tubes]
    sha: dict[str, str] = {}
    key: str | None = None
    try:
        for path in task.tubes.values():
            open(path, "rb").close()  # an unreadable file fails here, as hashing it first did
        from mrdflow.pipeline import analyze_sample

        # each file is hashed while the pipeline reads it (one pass over its bytes); any file the analysis did not
        # get to read in full (it failed first) is hashed after it
        read_hashes: dict[str, str] = {}
        try:
            panel = _load_panel_once(task.panel_path, task.config_sha256.get("panel"))
            result = analyze_sample([Path(p) for p in task.tubes.values()], panel, sample_id=task.sample_id,
                                    plot_data=task.report_path is not None, hashes=read_hashes)
        finally:
            for tube, path in task.tubes.items():
                sha[tube] = read_hashes.get(str(Path(path))) or sha256_file(path)
            key = input_key(sha, task.config_sha256)
    except MrdflowError as exc:
        result = SampleResult.failed(task.sample_id, files, str(exc))
    except OSError as exc:
        result = SampleResult.failed(task.sample_id, files, f"{exc.filename or ''}: cannot read file "
                                                            f"({exc.strerror or exc})".lstrip(": "))
    except Exception as exc:  # noqa: BLE001 - failure isolation: one sample's bug must not stop the batch
        names = ", ".join(Path(f).name for f in files)
        result = SampleResult.failed(task.sample_id, files, f"internal error while analysing {names} "
                                                            f"({type(exc).__name__}: {exc}); please report it")
        result.details["traceback"] = traceback.format_exc()
    report_path = None
    if task.report_path is not None:
        report_path = _write_report(task, result, sha, key)
    result.plots = []
    return SampleOutcome(result=result, tubes=dict(task.tubes), file_sha256=sha, input_key=key,
                         seconds=time.perf_counter() - t0, analysed_at=analysed_at, worker=_worker_name(),
                         report_path=report_path)


def _write_report(task: SampleTask, result: SampleResult, sha: Mapping[str, str], key: str | None) -> str | None:
    from mrdflow.report.html import render_sample_report

    identity = [{"tube": t, "path": p, "name": Path(p).name, "sha256": sha.get(t, ""),
                 "size": Path(p).stat().st_size if Path(p).exists() else None, "keywords": file_identity(p)}
                for t, p in task.tubes.items()]
    try:
        roles = _template_roles(task)
        provenance = {"panel": task.panel_path, **{f"{k} SHA-256": v for k, v in task.config_sha256.items()}}
        html = render_sample_report(result, identity, roles=roles, input_key=key, provenance=provenance)
    except Exception as exc:  # noqa: BLE001 - a plotting problem must not lose the sample's result
        result.qc_flags.append("report_failed")
        result.details["report_error"] = f"{type(exc).__name__}: {exc}"
        return None
    try:
        atomic_write_text(task.report_path, html)
    except OSError as exc:
        result.qc_flags.append("report_failed")
        result.details["report_error"] = f"cannot write {task.report_path}: {exc.strerror or exc}"
        return None
    return task.report_path


def _template_roles(task: SampleTask) -> dict[str, list[str]]:
    from mrdflow.gating.template import load_template

    panel = _load_panel_once(task.panel_path, task.config_sha256.get("panel"))
    template = load_template(panel.template)
    roles: dict[str, list[str]] = {}
    for node in template.nodes.values():
        for role in node.roles:
            roles.setdefault(role, []).append(node.name)
    return roles


# ---------------------------------------------------------------------------------------------------------------
# planning and running
# ---------------------------------------------------------------------------------------------------------------
def report_file_name(sample_id: str) -> str:
    """File name of a sample's report: the id itself when it is a safe file name, else a sanitised id plus a
    short digest (ids like ``A/B`` or ``<script>`` must neither escape the folder nor collide)."""
    import hashlib
    import re

    safe = re.sub(r"[^A-Za-z0-9._-]", "_", sample_id).strip("._") or "sample"
    if safe != sample_id or safe.lower() == "index":
        safe = f"{safe[:80]}-{hashlib.sha256(sample_id.encode()).hexdigest()[:8]}"
    return f"{safe}.html"


def default_worker_count(n_samples: int) -> int:
    """Local workers: one per core, no more than samples to run, and no more than memory allows."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        import psutil

        by_memory = max(1, int(psutil.virtual_memory().total // WORKER_MEMORY_BYTES))
    except ImportError:
        by_memory = cores
    return max(1, min(cores, by_memory, max(n_samples, 1)))


@dataclass
class BatchPlan:
    """A validated batch, ready to run: nothing has been analysed yet."""

    panel: Any
    panel_path: Path
    samples: list[Any]
    output_dir: Path
    store_path: Path
    hashes: dict[str, dict[str, str]]
    #: files that could not even be grouped (keyword grouping, TEXT unreadable): sample id → (path, error)
    unreadable: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def config_sha256(self) -> dict[str, str]:
        return {k: v["sha256"] for k, v in self.hashes.items()}


def plan_batch(panel_path: str | os.PathLike, output_dir: str | os.PathLike | None = None) -> BatchPlan:
    """Load and validate the panel and template, find and group the files; raises before any work starts.

    Raises
    ------
    PanelError, TemplateError
        The panel, its template or the file grouping is wrong (the command exits 2).
    """
    from mrdflow.gating.template import load_template
    from mrdflow.panel import load_panel
    from mrdflow.panel_files import find_files, group_files

    panel = load_panel(panel_path)
    load_template(panel.template)
    paths = find_files(panel)
    unreadable: dict[str, tuple[str, str]] = {}
    if panel.grouping.by == "keyword":
        # the keywords come from HEADER + TEXT only; a file whose TEXT cannot be read is one failed sample
        # (named after the file) rather than a reason to stop the whole batch
        keywords: dict[Path, Any] = {}
        for p in paths:
            try:
                keywords[p] = text_keywords(p)
            except MrdflowError as exc:
                sid = f"{p.stem} (unreadable file)"
                k = 2
                while sid in unreadable:  # same file name in two folders
                    sid, k = f"{p.stem} (unreadable file {k})", k + 1
                unreadable[sid] = (str(p.resolve()), str(exc))
        paths = [p for p in paths if p in keywords]
        samples = group_files(panel, paths, keywords_of=keywords.__getitem__)
    else:
        samples = group_files(panel, paths)
    out = Path(output_dir) if output_dir is not None else Path(panel.output_dir)
    store = getattr(panel, "store", None)
    store_path = Path(store) if store is not None else out / DEFAULT_STORE_NAME
    return BatchPlan(panel=panel, panel_path=Path(panel_path).resolve(), samples=samples, output_dir=out.resolve(),
                     store_path=store_path.resolve(), hashes=panel_hashes(panel), unreadable=unreadable)


def _fmt_count(n: int) -> str:
    return f"{int(n):,}".replace(",", " ")


def summary_line(result: SampleResult) -> str:
    """One line per sample for the progress output."""
    if not result.ok:
        return f"FAILED  {result.error.splitlines()[0] if result.error else ''}"
    mrd = result.mrd_status
    if result.mrd_status == "NEGATIVE":
        mrd += f" (LOD {result.lod:.1e})"
    elif result.mrd_status.startswith("POSITIVE"):
        mrd += f" {result.mrd_fraction:.2e}"
    flags = f"  flags: {', '.join(result.qc_flags)}" if result.qc_flags else ""
    return f"ok  {mrd}  {_fmt_count(result.n_events_evaluable)} evaluable  clonality {result.clonality}{flags}"


def _progress(done: int, total: int, sample_id: str, text: str, seconds: float | None) -> str:
    width = 20
    filled = width * done // max(total, 1)
    took = f"  {seconds:.1f} s" if seconds is not None else ""
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}  {sample_id}  {text}{took}"


def _reusable_report(stored: StoredSample, target: Path) -> bool:
    """Make the stored analysis's report available at ``target``; False when it cannot be (then reanalyse)."""
    marker = f'name="mrdflow-input-key" content="{stored.input_key}"'.encode()
    candidates = [target] + ([Path(stored.report_path)] if stored.report_path else [])
    for path in candidates:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if marker in data:
            if path != target:
                atomic_write_bytes(target, data)
            return True
    return False


def run_batch(panel_path: str | os.PathLike, output_dir: str | os.PathLike | None = None, *,
              workers: int | None = None, scheduler: str | None = None, resume: bool = False,
              retries: int = 2, reports: bool = True, echo: Callable[[str], None] | None = None,
              command: Iterable[str] | None = None,
              task_fn: Callable[[SampleTask], SampleOutcome] | None = None,
              numba_threads: int | None = None) -> BatchSummary:
    """Analyse every sample of a panel and write the outputs (DESIGN.md §3).

    Parameters
    ----------
    panel_path : the panel YAML.
    output_dir : output folder (default: the panel's ``output_dir``).
    workers : local worker processes (None = :func:`default_worker_count`; 0 = in this process).
    scheduler : address of an existing Dask scheduler (overrides ``workers``).
    resume : reuse stored ``ok`` results whose input key (files, panel, template hashes) matches.
    retries : extra attempts of a sample whose worker was lost.
    reports : render the per-sample and batch HTML reports.
    echo : where progress lines go (default: stdout, flushed).
    command : the command line, recorded in run.json.
    task_fn : what runs one :class:`SampleTask` (default :func:`analyze_task`; tests substitute a wrapper).
    numba_threads : numba threads per local worker (default: the machine's cores // workers, so the workers'
        parallel kernels together use every core once; benchmarks set 1 to measure Dask's scaling alone).

    Returns
    -------
    BatchSummary
        ``results`` in sample-id order, as written to results.csv.
    """
    echo = echo or (lambda s: print(s, flush=True))
    t_start = time.perf_counter()
    plan = plan_batch(panel_path, output_dir)
    out = plan.output_dir
    report_dir = out / "report"
    out.mkdir(parents=True, exist_ok=True)
    if reports:
        report_dir.mkdir(exist_ok=True)
    for folder in (out, report_dir, plan.store_path.parent):
        remove_stale_temporaries(folder)

    run_id = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:8]}"
    started = utc_now()
    store = ResultStore(plan.store_path)
    try:
        store.begin_run(run_id, started=started, panel=plan.hashes.get("panel"), template=plan.hashes["template"],
                        output_dir=str(out), mrdflow_version=__version__)
        tasks, reused = [], []
        for s in plan.samples:
            tubes = {t: str(Path(p).resolve()) for t, p in s.tubes.items()}
            target = report_dir / report_file_name(s.sample_id)
            if resume and store.has_candidate(s.sample_id):
                try:
                    key = input_key({t: sha256_file(p) for t, p in tubes.items()}, plan.config_sha256)
                except OSError:
                    key = None
                stored = store.find_reusable(s.sample_id, key) if key else None
                if stored is not None and (not reports or _reusable_report(stored, target)):
                    store.copy_sample(stored, run_id, report_path=str(target) if reports else None)
                    reused.append(s.sample_id)
                    continue
            tasks.append(SampleTask(sample_id=s.sample_id, tubes=tubes, panel_path=str(plan.panel_path),
                                    config_sha256=plan.config_sha256,
                                    report_path=str(target) if reports else None))
        total = len(plan.samples) + len(plan.unreadable)
        echo(f"mrdflow run {run_id}: {total} sample(s) from {plan.panel_path.name}; output in {out}")
        if reused:
            echo(f"resume: {len(reused)} sample(s) already analysed with the same files, panel and template: "
                 f"{', '.join(reused)}")
        done = len(reused)

        def record(outcome: SampleOutcome) -> None:
            nonlocal done
            store.record(run_id, outcome.result, tubes=outcome.tubes, file_sha256=outcome.file_sha256,
                         input_key=outcome.input_key, seconds=outcome.seconds, analysed_at=outcome.analysed_at,
                         worker=outcome.worker, report_path=outcome.report_path)
            done += 1
            echo(_progress(done, total, outcome.result.sample_id, summary_line(outcome.result), outcome.seconds))

        for sid, (path, error) in sorted(plan.unreadable.items()):
            record(SampleOutcome(result=SampleResult.failed(sid, [path], error), tubes={"?": path}, file_sha256={},
                                 input_key=None, seconds=0.0, analysed_at=utc_now(), worker="none"))
        scheduler_info = _execute(tasks, record, workers=workers, scheduler=scheduler, retries=retries, echo=echo,
                                  numba_threads=numba_threads,
                                  task_fn=task_fn)

        results = store.results(run_id)
        write_results_csv(out / "results.csv", results)
        write_populations_csv(out / "populations.csv", results)
        info = store.sample_info(run_id)
        if reports:
            from mrdflow.report.html import render_batch_report

            atomic_write_text(report_dir / "index.html", render_batch_report(
                results, {sid: report_file_name(sid) for sid in info if (report_dir / report_file_name(sid)).exists()},
                run_id=run_id, panel_name=plan.panel.name,
                started=started))
        finished = utc_now()
        provenance = {
            "run_id": run_id,
            "command": list(command) if command is not None else sys.argv,
            "started": started,
            "finished": finished,
            "seconds": round(time.perf_counter() - t_start, 3),
            "output_dir": str(out),
            "store": str(plan.store_path),
            "execution": scheduler_info,
            "software": software_versions(),
            **plan.hashes,
            "summary": {"samples": len(results), "ok": sum(r.ok for r in results),
                        "failed": sum(not r.ok for r in results), "reused": len(reused)},
            "samples": [
                {"sample_id": r.sample_id, "status": r.status,
                 "files": [{"tube": t, "path": p, "sha256": info[r.sample_id]["file_sha256"].get(t)}
                           for t, p in info[r.sample_id]["tubes"].items()],
                 "input_key": info[r.sample_id]["input_key"],
                 "seconds": info[r.sample_id]["seconds"],
                 "analysed_at": info[r.sample_id]["analysed_at"],
                 "worker": info[r.sample_id]["worker"],
                 "reused_from": info[r.sample_id]["reused_from"]}
                for r in results],
        }
        provenance = _json_safe(provenance)
        write_run_json(out / "run.json", provenance)
        store.finish_run(run_id, finished=finished, provenance=provenance)
    finally:
        store.close()
    summary = BatchSummary(run_id=run_id, output_dir=out, store_path=plan.store_path, results=results,
                           reused=reused, seconds=time.perf_counter() - t_start)
    echo(f"done in {summary.seconds:.1f} s: {len(results) - summary.n_failed} ok, {summary.n_failed} failed"
         f"{f', {len(reused)} reused' if reused else ''}; results in {out / 'results.csv'}")
    return summary


def _json_safe(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    return v


def _keep_malloc_dynamic():
    """A Dask config context in which local workers spawn without Dask's default ``MALLOC_TRIM_THRESHOLD_``.

    Dask's nanny sets it (65536) so that workers hand freed memory back to the OS. Merely setting it turns off
    glibc's dynamic mmap threshold: every array above 128 kB is then mapped and unmapped afresh, and each sample's
    tens of 20 MB column arrays and masks are page-faulted in again — the analysis ran 25 % slower on a worker
    than in a plain process (1.30 vs 1.04 s per 5 M-event tube, one thread). Without it, arrays up to 32 MB are
    reused from the heap and larger ones are still returned to the OS. A value exported in the shell is inherited.
    """
    import dask

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {})
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    return dask.config.set({"distributed.nanny.pre-spawn-environ": environ})


@contextlib.contextmanager
def _environ_restored() -> Iterator[None]:
    """Put ``os.environ`` back as it was on entry (keys added removed, keys changed or removed restored)."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        for key in [k for k in os.environ if k not in saved]:
            del os.environ[key]
        for key, value in saved.items():
            if os.environ.get(key) != value:
                os.environ[key] = value


#: longest wait for the workers' kernel warm-up (a cold compile takes ~25 s of one core) before samples start
_WARMUP_WAIT_SECONDS = 600


def _warm_workers(client, *, report: bool, echo: Callable[[str], None]) -> dict[str, Any]:
    """Have worker ``k`` of ``n`` compile, or load from numba's cache, part ``k`` of the kernels the analysis (and
    the report) call, all at once, before any sample (:mod:`mrdflow.kernels.warmup`): on a first run each kernel is
    compiled once instead of once per worker. A part that fails only leaves its kernels to their first call."""
    from distributed import TimeoutError as DaskTimeoutError, wait

    from mrdflow.kernels.warmup import warm_kernels

    t0 = time.perf_counter()
    workers = sorted(client.scheduler_info(n_workers=-1).get("workers", {}))
    # a preference, not a restriction: a part whose worker is lost (and respawned under another address) still
    # runs somewhere instead of waiting for a worker that will never come back
    futures = [client.submit(warm_kernels, k, len(workers), report=report, workers=[w], allow_other_workers=True,
                             pure=False, key=f"mrdflow-kernel-warmup-{k}-{uuid.uuid4().hex}")
               for k, w in enumerate(workers)]
    try:
        wait(futures, timeout=_WARMUP_WAIT_SECONDS)
    except DaskTimeoutError:  # asyncio's (a builtin TimeoutError only from Python 3.11)
        pass  # unusually slow: the samples queue behind the parts still running
    problems: list[str] = []
    for future in futures:
        if future.status == "finished":
            problems.extend(future.result())
        elif future.status == "error":
            problems.append(f"a worker's warm-up failed ({type(future.exception()).__name__}: {future.exception()})")
        else:
            problems.append(f"a worker's warm-up was still running after {_WARMUP_WAIT_SECONDS} s")
        future.release()
    if problems:
        echo(f"note: {len(problems)} kernel warm-up problem(s), those kernels compile on first use: {problems[0]}")
    return {"workers": len(workers), "seconds": round(time.perf_counter() - t0, 3), "problems": problems}


def _execute(tasks: list[SampleTask], record: Callable[[SampleOutcome], None], *, workers: int | None,
             scheduler: str | None, retries: int, echo: Callable[[str], None],
             task_fn: Callable[[SampleTask], SampleOutcome] | None = None,
             numba_threads: int | None = None) -> dict[str, Any]:
    """Run the tasks in the chosen mode, calling ``record`` as each completes; returns how they were run."""
    task_fn = task_fn or analyze_task
    if not tasks:
        return {"mode": "none", "reason": "nothing to analyse"}
    if scheduler is None and workers == 0:
        for task in tasks:
            record(task_fn(task))
        return {"mode": "in-process", "workers": 0}

    from distributed import Client, LocalCluster, as_completed

    # the cluster lives inside the config context: a worker respawned after a loss gets the same environment;
    # Dask's nanny writes the workers' environment (OMP/MKL/OPENBLAS_NUM_THREADS=1, ...) into this process's own
    # os.environ before spawning them and leaves it there, which would quietly limit every later BLAS call and
    # subprocess of the caller — the caller's environment is put back once the cluster is closed
    with _keep_malloc_dynamic(), _environ_restored():
        cluster = None
        if scheduler is not None:
            client = Client(scheduler, timeout="30s")
            sched = client.scheduler_info(n_workers=-1)
            info = {"mode": "scheduler", "address": scheduler, "workers": len(sched.get("workers", {}))}
            has_dashboard = "dashboard" in sched.get("services", {})
        else:
            n = workers if workers is not None else default_worker_count(len(tasks))
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
            if numba_threads is not None and (not isinstance(numba_threads, int) or numba_threads < 1):
                raise ValueError(f"numba_threads must be a positive integer, found {numba_threads!r}")
            numba_threads = numba_threads or max(1, cores // n)
            env = {"NUMBA_NUM_THREADS": str(numba_threads), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                   "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                                   env=env, silence_logs=40)
            client = Client(cluster)
            has_dashboard = True
            info = {"mode": "local", "workers": n, "threads_per_worker": 1, "numba_threads": numba_threads}
        try:
            try:
                link = client.dashboard_link if has_dashboard else None
            except Exception:  # noqa: BLE001 - no dashboard (bokeh missing) is not an error
                link = None
            if link:
                echo(f"Dask dashboard: {link}")
                info["dashboard"] = link
            if task_fn is analyze_task:
                info["kernel_warmup"] = _warm_workers(client, report=any(t.report_path for t in tasks), echo=echo)
            futures = {client.submit(task_fn, t, key=f"mrdflow-sample-{uuid.uuid4().hex}", retries=retries,
                                     pure=False): t for t in tasks}
            for future in as_completed(futures):
                task = futures[future]
                if future.status == "finished":
                    outcome = future.result()
                else:
                    exc = future.exception()
                    outcome = SampleOutcome(
                        result=SampleResult.failed(task.sample_id, list(task.tubes.values()),
                                                   f"the Dask worker analysing this sample was lost {retries + 1} "
                                                   f"time(s) or the task failed ({type(exc).__name__}: {exc})"),
                        tubes=dict(task.tubes), file_sha256={}, input_key=None, seconds=0.0, analysed_at=utc_now(),
                        worker="lost")
                future.release()
                record(outcome)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
        return info
