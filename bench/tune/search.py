"""The search: one seeded Optuna TPE study per method, whose trials are student cells scored on the
validation split, run through the grid runner's executors (local processes or Ray).

- **Storage**: an SQLite file in the runs folder, ``<runs>/tuning/<name>.db`` (``optuna.storages.
  RDBStorage``), one study per method named ``<method>-<key>``. The key hashes everything a trial's
  value depends on besides the searched values and the number of trials: the method's space, the
  other options, the resolved config (profile schedule, task, seeds, split, teacher), its code
  identity and data fingerprints, the metric and the sampler settings. Changing any of them starts a
  new study (as it makes new cells); raising ``trials`` continues the old one.
- **Ask and tell**: up to ``workers`` trials are asked at once, each a :class:`bench.execute.cells.StudentJob`
  with ``split="val"`` (its own cell id, from its options), run by :func:`bench.execute.runner.run_cell` and
  told its PSNR; a trial whose cell failed is told FAIL with its error and asked again.
- **Seeds**: every ask uses a TPE sampler seeded from (``sampler_seed``, method, slot, failures): slot
  is the number of complete trials before it plus its place in the batch, failures the method's
  failed cells so far. TPE draws from the stored history, so the same spec, history and worker count
  ask the same values, and a trial a kill interrupted is asked again with its values.
- **Resume**: complete trials are never rerun; a trial left RUNNING by a killed process is marked
  FAIL (without an ``error``) and asked again; its cell, if it finished, is found in the run store
  rather than retrained (or resumes from its checkpoint). A lock file ``<runs>/tuning/<name>.lock``
  keeps a second process off the same search.
- **Equal budget**: every method gets exactly ``trials`` complete trials on the profile's student
  schedule; when a study holds more (an earlier run with more trials), its first ``trials`` count.
- **No test image is read**: trials score the embedded validation crops. The teacher they distil
  from is the grids' own (same id), found in the run store or, when missing, trained and scored by
  :func:`bench.execute.teachers.ensure_teacher` like any grid's teacher (its record holds its test scores)
  before the first trial; nothing of its record enters a trial.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution
from optuna.samplers import TPESampler
from optuna.trial import FrozenTrial, TrialState

from bench.execute.cells import StudentJob, teacher_id
from bench.execute.executors import available_cpus, executor_map
from bench.execute.provenance import config_hash
from bench.execute.runner import run_cell
from bench.execute.teachers import prepare_teacher
from bench.spec.codeid import code_identity
from bench.store import CorruptRecordError, RunStore, non_finite_metric
from skd_core.data import embedded_images
from skd_core.errors import ConfigError, SkdError
from skd_core.methods import METHODS

from .spec import Param, TuningSpec

Log = Callable[[str], None]


@dataclass(frozen=True)
class TrialRow:
    """One trial of one method's study, as the history lists it; ``value`` is the validation PSNR
    (dB) of a complete trial; ``counted``: one of the method's first ``trials`` complete trials."""

    method: str
    number: int
    state: str
    value: float | None
    params: dict[str, Any]
    cell: str | None
    error: str | None
    counted: bool


@dataclass(frozen=True)
class MethodResult:
    """A method's finished study: its name in the storage and the best counted trial."""

    method: str
    study: str
    best: TrialRow


@dataclass(frozen=True)
class SearchResult:
    results: dict[str, MethodResult]
    history: list[TrialRow]
    storage: Path
    val_images: int


def storage_path(spec: TuningSpec, runs: Path) -> Path:
    return Path(runs) / "tuning" / f"{spec.name}.db"


def trial_job(spec: TuningSpec, method: str, params: dict[str, Any]) -> StudentJob:
    """The cell of one trial: the spec's profile, task and seeds, ``params`` over the profile's
    options of ``method``, scored on the spec's split."""
    return StudentJob.create(spec.profile, spec.task, method, params, None, spec.seed, spec.teacher_seed,
                             split=spec.split)


def study_name(spec: TuningSpec, method: str) -> str:
    """``<method>-<key>`` (module doc: what the key hashes)."""
    job = trial_job(spec, method, {})
    searched = {p.name for p in spec.space[method]}
    config = {k: v for k, v in job.config().items() if k != "options"}
    fixed = {k: v for k, v in job.options.items() if k not in searched}
    key = config_hash({"config": config, "fixed": fixed, "space": [p.as_dict() for p in spec.space[method]],
                       "optuna": optuna.__version__,
                       "code": code_identity(job.code_roots()), "data": job.data(), "metric": spec.metric,
                       "sampler": ["TPE", spec.sampler_seed, spec.startup_trials]})
    return f"{method}-{key[:12]}"


def distributions(params: tuple[Param, ...]) -> dict[str, BaseDistribution]:
    return {p.name: CategoricalDistribution(p.choices) if p.choices is not None
            else FloatDistribution(p.low, p.high, log=p.log) for p in params}


def ask_seed(sampler_seed: int, method: str, slot: int, failures: int) -> int:
    """The TPE seed of one ask (module doc, "Seeds")."""
    digest = hashlib.sha256(f"{sampler_seed}/{method}/{slot}/{failures}".encode()).hexdigest()
    return int(digest[:8], 16)


def search(spec: TuningSpec, runs: Path, *, executor: str = "local", workers: int = 1, device: str = "cpu",
           address: str | None = None, log: Log | None = None) -> SearchResult:
    """Run (or resume) every method's study of ``spec`` to ``spec.trials`` complete trials in the
    run store at ``runs``; ``log`` receives one progress line per event."""
    log = log or (lambda line: None)
    run = executor_map(executor)
    jobs = {method: trial_job(spec, method, {}) for method in spec.space}  # every method resolves
    names = {method: study_name(spec, method) for method in spec.space}
    store = RunStore(runs).writable()
    db = storage_path(spec, store.root)
    lock = store.lock(db.parent, f"{spec.name}.lock")
    if not lock.try_acquire():
        raise ConfigError(f"tuning search {spec.name!r} is running in another process ({lock.path}: "
                          f"{lock.owner()}); wait for it (a lock whose process is gone is taken over)")
    try:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = optuna.storages.RDBStorage(f"sqlite:///{db.resolve()}")
        cpus = available_cpus()
        threads = max(1, cpus // workers) if device == "cpu" else 0
        _teacher_first(spec, [j for j in jobs.values() if METHODS.get(j.method).needs_teacher], store, run,
                       device, cpus, address, log)
        ctx = _Context(spec, store, run, workers, device, threads, address, log)
        results, history = {}, []
        for method in spec.space:
            study = optuna.create_study(storage=storage, study_name=names[method], direction="maximize",
                                        load_if_exists=True)
            _search_method(ctx, method, study)
            rows = _rows(method, study, spec.trials)
            history += rows
            counted = [r for r in rows if r.counted]
            best = max(counted, key=lambda r: (r.value, -r.number))
            results[method] = MethodResult(method, names[method], best)
            log(f"{method}: best {best.value:.3f} dB (trial {best.number}) {best.params}")
        return SearchResult(results, history, db, len(embedded_images(spec.split)))
    finally:
        lock.release()


@dataclass(frozen=True)
class _Context:
    spec: TuningSpec
    store: RunStore
    run: Callable[..., list[str]]
    workers: int
    device: str
    threads: int
    address: str | None
    log: Log


def _teacher_first(spec: TuningSpec, jobs: list[StudentJob], store: RunStore, run: Callable[..., list[str]],
                   device: str, cpus: int, address: str | None, log: Log) -> None:
    """Find the teacher the trials distil from, or train it (scored on the test split like any grid's
    teacher) before the first trial."""
    if not jobs:
        return
    job = jobs[0]
    tid = teacher_id(job.profile, job.task, job.teacher_seed)
    try:
        record = store.read_record(store.teacher_dir(tid))
    except CorruptRecordError:
        record = None
    if record is not None and record.get("status") == "done":
        log(f"teacher {tid}: found in {store.root}")
        return
    log(f"teacher {tid}: not in {store.root}; training it first, as a grid would (its record holds its test "
        "scores; no trial reads them)")
    [outcome] = run(prepare_teacher, [(job, store.root, device, cpus if device == "cpu" else 0, False)], 1,
                    "teacher", address, progress=False, cpus=cpus, cuda=device.startswith("cuda"))
    if outcome != "done":
        raise SkdError(f"teacher {tid} of the trials {outcome.splitlines()[0]}")


def _search_method(ctx: _Context, method: str, study: optuna.Study) -> None:
    spec = ctx.spec
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(trial.number, state=TrialState.FAIL)
        ctx.log(f"{method}: trial {trial.number} was interrupted; it is asked again")
    space = distributions(spec.space[method])
    failed_now = 0  # failures of this run only: a rerun after a fixed fault is not blocked by old ones
    while True:
        trials = study.get_trials(deepcopy=False)
        complete = sum(t.state == TrialState.COMPLETE for t in trials)
        failures = [t for t in trials if t.state == TrialState.FAIL and "error" in t.user_attrs]
        if complete >= spec.trials:
            return
        if failed_now >= spec.trials:
            raise SkdError(f"tuning {method}: {failed_now} trials failed in this run, the last with: "
                           f"{failures[-1].user_attrs['error']} (cell {failures[-1].user_attrs.get('cell')})")
        batch = []
        for i in range(min(ctx.workers, spec.trials - complete)):
            # constant_liar explicit: its default differs across Optuna versions (the key holds the version)
            study.sampler = TPESampler(seed=ask_seed(spec.sampler_seed, method, complete + i, len(failures)),
                                       n_startup_trials=spec.startup_trials, constant_liar=False)
            trial = study.ask(space)
            job = trial_job(spec, method, trial.params)
            trial.set_user_attr("cell", job.id())
            if any(job.id() == other.id() for _, other in batch):  # the same values twice in one batch
                study.tell(trial, state=TrialState.FAIL)  # without an error: neither counted nor a fault
                continue
            batch.append((trial, job))
        t0 = time.perf_counter()
        statuses = ctx.run(run_cell, [(job, job.id(), ctx.store.root, ctx.device, ctx.threads, False, False)
                                      for _, job in batch], ctx.workers, "trials", ctx.address, progress=False,
                           cpus=ctx.threads, cuda=ctx.device.startswith("cuda"))
        seconds = time.perf_counter() - t0
        for (trial, job), status in zip(batch, statuses, strict=True):
            value, error = _outcome(ctx.store, job.id(), status)
            if error is None:
                study.tell(trial, value)
            elif status == "busy":  # another runner has the cell: asked again later, not a fault
                study.tell(trial, state=TrialState.FAIL)
            else:
                trial.set_user_attr("error", error)
                study.tell(trial, state=TrialState.FAIL)
                failed_now += 1
            complete += error is None
            what = f"{value:.3f} dB" if error is None else f"failed: {error}"
            cached = " (cell found in the run store)" if status == "skipped" else ""
            ctx.log(f"{method}: trial {trial.number} [{complete}/{spec.trials}] {trial.params} -> {what}{cached}, "
                    f"{seconds:.1f} s")


def _outcome(store: RunStore, cell: str, status: str) -> tuple[float | None, str | None]:
    """``(validation PSNR, None)`` for a cell that finished, ``(None, error)`` otherwise."""
    if status == "busy":
        return None, f"cell {cell} is being run by another runner"
    try:
        record = store.read_record(store.cell_dir(cell)) or {}
    except CorruptRecordError as exc:
        return None, str(exc)
    if status in ("done", "skipped") and record.get("status") == "done" and not non_finite_metric(record):
        return float(record["metrics"]["psnr"]), None
    return None, str(record.get("error") or f"cell {cell} ended {status}")


def _rows(method: str, study: optuna.Study, trials: int) -> list[TrialRow]:
    frozen: list[FrozenTrial] = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    counted = {t.number for t in [t for t in frozen if t.state == TrialState.COMPLETE][:trials]}
    return [TrialRow(method, t.number, t.state.name, t.value if t.state == TrialState.COMPLETE else None,
                     dict(t.params), t.user_attrs.get("cell"), t.user_attrs.get("error"), t.number in counted)
            for t in frozen]
