"""Performance regression check: the pytest-benchmark suite (``tests/benchmarks``) on the current
tree against a baseline measured on the same machine, failing on a slower median.

The baseline is either a git ref, measured now (the merge-base of the ref and ``HEAD``, checked
out in a temporary ``git worktree`` and run with the same Python), or a stored JSON file written by
an earlier run (``--save``). Medians are compared per benchmark (pytest-benchmark's ``fullname``):
``change = current / baseline - 1``; a change above the threshold is a regression. Benchmarks that
exist on one side only are listed, never failed. Machine info (CPU, device, threads, versions) of
both runs is shown; a baseline from a different CPU or device is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tabulate import tabulate

from skd_core.atomic import atomic_write_json, atomic_write_text
from skd_core.errors import SkdError

BENCHMARKS = "tests/benchmarks"
#: machine_info fields that must agree between baseline and current run
SAME_MACHINE = (("cpu", "brand_raw"), ("cpu", "count"), ("torch", "device"), ("torch", "device_name"))
#: machine_info fields shown side by side (a difference is reported, not refused)
SHOWN = (*SAME_MACHINE, ("torch", "threads"), ("torch", "torch_version"), ("torch", "cuda_version"),
         ("python_version",))


def run_benchmarks(tree: Path, json_path: Path, select: str | None = None,
                   extra_args: Sequence[str] = ()) -> None:
    """Run ``tree``'s benchmarks with timing on (``--benchmark-enable``), importing ``tree``'s own
    ``skd_core``/``bench``; the pytest-benchmark JSON goes to ``json_path``."""
    if not (tree / BENCHMARKS).is_dir():
        raise SkdError(f"{tree} has no {BENCHMARKS}/ to benchmark")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pytest", BENCHMARKS, "--benchmark-enable", "--benchmark-only", "-q",
           "-p", "no:cacheprovider", f"--benchmark-json={json_path.resolve()}", *(["-k", select] if select else []),
           *extra_args]
    # a session of its own: an enclosing pytest-xdist worker's variables would turn the timing off
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), os.environ.get("PYTHONPATH")]))
    print(f"skd-bench perf: benchmarking {tree} -> {json_path}", flush=True)
    done = subprocess.run(cmd, cwd=tree, env=env)
    if done.returncode != 0 or not json_path.is_file():
        raise SkdError(f"benchmarks failed in {tree} (pytest exit {done.returncode}): {' '.join(cmd)}")


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SkdError(f"git {' '.join(args)} failed in {repo}: {done.stderr.strip()}")
    return done.stdout.strip()


@contextlib.contextmanager
def base_worktree(repo: Path, ref: str) -> Iterator[tuple[Path, str]]:
    """The merge-base of ``ref`` and ``HEAD`` checked out (detached) in a temporary worktree;
    yields ``(path, commit)`` and removes the worktree afterwards."""
    commit = _git(repo, "merge-base", ref, "HEAD")
    folder = Path(tempfile.mkdtemp(prefix="skd-perf-base-")) / "tree"
    _git(repo, "worktree", "add", "--detach", "--quiet", str(folder), commit)
    try:
        yield folder, commit
    finally:
        _git(repo, "worktree", "remove", "--force", str(folder))
        shutil.rmtree(folder.parent, ignore_errors=True)


def load_run(path: Path) -> dict[str, Any]:
    """A pytest-benchmark JSON file; a missing or foreign file raises :class:`SkdError` naming it."""
    try:
        run = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise SkdError(f"cannot read benchmark run {path}: {exc}") from exc
    if not isinstance(run, dict) or "benchmarks" not in run or "machine_info" not in run:
        raise SkdError(f"{path} is not a pytest-benchmark JSON file (no 'benchmarks' / 'machine_info')")
    return run


def _field(info: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        info = info.get(key) if isinstance(info, dict) else None
    return info


@dataclass
class Comparison:
    """Per-benchmark medians (seconds) of baseline and current run, ``change`` = current / baseline - 1."""

    rows: pd.DataFrame  # name, group, baseline_s, current_s, change, verdict
    threshold: float  # fraction, e.g. 0.10
    machines: pd.DataFrame  # field, baseline, current

    @property
    def regressions(self) -> pd.DataFrame:
        return self.rows[self.rows["verdict"] == "SLOWER"]

    def markdown(self, baseline: str, current: str) -> str:
        """The comparison as a Markdown page: verdict, per-benchmark table, machines."""
        table = self.rows.assign(
            baseline_ms=self.rows["baseline_s"] * 1e3, current_ms=self.rows["current_s"] * 1e3,
            change=[f"{c:+.1%}" if pd.notna(c) else "" for c in self.rows["change"]],
        )[["name", "baseline_ms", "current_ms", "change", "verdict"]]
        verdict = (f"**{len(self.regressions)} regression(s)** beyond +{self.threshold:.0%}"
                   if len(self.regressions) else f"no median slower than +{self.threshold:.0%}")
        return "\n".join([
            "# Performance comparison", "",
            f"Baseline: {baseline}. Current: {current}. Median wall time per call (ms; pytest-benchmark, "
            f"timer {self.rows.attrs.get('timer', 'perf_counter')}), change = current / baseline - 1: {verdict}.",
            "", tabulate(table.to_numpy().tolist(), headers=list(table.columns), tablefmt="github", floatfmt=".2f"),
            "", "Machines:", "",
            tabulate(self.machines.to_numpy().tolist(), headers=list(self.machines.columns), tablefmt="github"), "",
        ])


def compare(baseline: dict[str, Any], current: dict[str, Any], threshold: float) -> Comparison:
    """Compare the medians of two pytest-benchmark runs; raises :class:`SkdError` when they come
    from different machines (CPU model and count, device)."""
    b_info, c_info = baseline["machine_info"], current["machine_info"]
    machines = pd.DataFrame([{"field": ".".join(k), "baseline": _field(b_info, k), "current": _field(c_info, k)}
                             for k in SHOWN])
    differ = [".".join(k) for k in SAME_MACHINE if _field(b_info, k) != _field(c_info, k)]
    if differ:
        raise SkdError("baseline and current run come from different machines (" + "; ".join(
            f"{k}: {_field(b_info, tuple(k.split('.')))!r} vs {_field(c_info, tuple(k.split('.')))!r}"
            for k in differ) + "); measure the baseline on this machine (--baseline REF)")
    base = {b["fullname"]: b for b in baseline["benchmarks"]}
    cur = {b["fullname"]: b for b in current["benchmarks"]}
    rows = []
    for name in [*cur, *(n for n in base if n not in cur)]:
        b, c = base.get(name), cur.get(name)
        b_med = b["stats"]["median"] if b else float("nan")
        c_med = c["stats"]["median"] if c else float("nan")
        change = c_med / b_med - 1 if b and c else float("nan")
        verdict = ("new" if b is None else "gone" if c is None
                   else "SLOWER" if change > threshold else "faster" if change < -threshold else "same")
        rows.append({"name": name, "group": (c or b).get("group"), "baseline_s": b_med, "current_s": c_med,
                     "change": change, "verdict": verdict})
    frame = pd.DataFrame(rows, columns=["name", "group", "baseline_s", "current_s", "change", "verdict"])
    frame.attrs["timer"] = (current.get("benchmarks") or [{}])[0].get("options", {}).get("timer", "perf_counter")
    return Comparison(frame, threshold, machines)


def perf(repo: Path, baseline: str, threshold: float, out: Path, select: str | None = None,
         save: Path | None = None) -> Comparison:
    """Benchmark ``repo``'s working tree and ``baseline`` (a JSON file, or a git ref measured now),
    write ``out/{current,baseline}.json`` and ``out/compare.{md,json}``; returns the comparison."""
    out.mkdir(parents=True, exist_ok=True)
    current_json = out / "current.json"
    stored = Path(baseline)
    if stored.suffix == ".json":
        base_run, base_desc = load_run(stored), f"stored run `{stored}`"
        shutil.copyfile(stored, out / "baseline.json")
        run_benchmarks(repo, current_json, select)
    else:
        with base_worktree(repo, baseline) as (tree, commit):
            run_benchmarks(tree, out / "baseline.json", select)
        base_run, base_desc = load_run(out / "baseline.json"), f"`{baseline}` (merge-base {commit[:10]}), measured now"
        run_benchmarks(repo, current_json, select)
    current_run = load_run(current_json)
    result = compare(base_run, current_run, threshold)
    head = _git(repo, "rev-parse", "--short", "HEAD")
    dirty = " + uncommitted changes" if _git(repo, "status", "--porcelain", "--untracked-files=no") else ""
    atomic_write_text(out / "compare.md", result.markdown(base_desc, f"working tree at {head}{dirty}"))
    atomic_write_json(out / "compare.json", {"threshold": threshold, "baseline": base_desc,
                                             "rows": result.rows.to_dict(orient="records"),
                                             "machines": result.machines.to_dict(orient="records")})
    if save is not None:
        save.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(current_json, save)
    return result
