"""docs/guide.md, executed: every command of its ```bash blocks, every ```python block and every file
it asks the reader to write, in document order, on the ``smoke`` profile.

Convention. The guide's commands are written exactly as a user types them from the repository root,
at the scale they are meant for (``cpu`` or ``paper`` profile, a GPU, real datasets, official
checkpoints). :func:`prepare` changes only what a test machine cannot have, by these rules, and
nothing else:

1. Blocks. ```bash: one command per line (``\\`` continuations joined; ``#`` lines -- shebang,
   ``#SBATCH`` -- skipped). ```python / ```yaml with ``title="PATH"``: the reader's file, written to
   PATH (``append``: appended to it). ```python without a title: run as a script. A ``run:`` step of
   a workflow file under ``.github/workflows/`` is a command too.
2. Working directory: a temporary folder holding copies of ``noxfile.py`` and ``ablations/`` (the
   repository root as the commands see it), so ``runs/`` and ``results/`` are temporary. ``nox``
   runs with ``--no-venv --no-install``: the session's own code, on this interpreter, without
   installing (nox skips ``session.install``); a renamed or removed session fails.
3. Scale: ``--profile X`` becomes ``--profile smoke``, and is added where a command that takes it
   lacks it (``skd-bench`` sub-commands with a ``--profile`` option, the same through a launcher
   ``python FILE.py``, ``nox -s ablations|paper_tables``); ``--size H W`` becomes ``--size 64 64``
   (MACs scale with H x W; the 256 x 256 counts are pinned by tests/test_complexity.py); in
   ``eval`` and ``throughput`` the paper presets become the smoke profile's (:data:`SMOKE_PRESETS`);
   runs of the :data:`ONE_SEED` grids get ``--only seed=0`` (their methods, not their seeds, are
   what the commands exercise).
4. Machine: ``--device cuda`` becomes ``--device cpu`` where CUDA is not available.
5. Data: each placeholder path of :data:`PLACEHOLDERS` becomes tiny data this test writes in the
   layout the guide names; any other absolute path in a command fails the test. :data:`FILES` are
   made in the working directory, :data:`ENV` is set.
6. ``nox -s perf`` / ``skd-bench perf`` run in a git clone of the repository (they need history;
   its ``origin/main`` is the repository's ``main``, else its ``HEAD``), on ``--select``
   :data:`PERF_SELECT` where no selection is given and with ``--threshold`` raised to
   :data:`PERF_THRESHOLD` (a timing regression on a shared machine is noise, not a broken command);
   a removed ``perf`` command fails like any other. ``pip install`` lines are not run;
   ``--executor ray`` commands are skipped without the ``ray`` extra.
7. Tuning: ``skd-bench tune`` runs :data:`TUNE_TRIALS` trials per method unless ``--trials`` is
   given, and writes its tuned options to the working directory's ``tuned/`` (``--tuned-dir``),
   never into the repository's ``bench/tuned/``, which the profiles of the test run read.

Every command must exit 0; :func:`test_a_broken_command_fails` feeds broken ones through the same
runner. The steps build on each other (files, runs): run the whole file, not a selection of them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from bench.cli import COMMANDS, build_parser
from skd_core.models import MODELS, build_model

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "guide.md"
#: paper-scale presets -> the smoke profile's, in commands that run a model many times
SMOKE_PRESETS = {"restormer": "teacher-smoke", "student-dckd": "student-smoke"}
SMOKE_COMMANDS = ("eval", "throughput")
SIZE = ("64", "64")
#: placeholder -> (what the test writes there, path relative to the working directory)
PLACEHOLDERS = {
    "/data/Rain13K/train": ("rain13k", "data/Rain13K/train"),  # input/ + target/
    "/data/test/Rain100H": ("rain13k", "data/test/Rain100H"),  # Restormer's test sets: input/ + target/
    "/data/Rain100H": ("rain100", "data/Rain100H"),  # rainy/rain-001.png + norain-001.png
    "/ckpt/deraining.pth": ("checkpoint", "ckpt/deraining.pth"),  # {"params": teacher-smoke state_dict}
    "/shared/skd-runs": ("folder", "runs"),  # the shared filesystem: the working directory's runs/
}
FILES = ("restored.png", "reference.png")
ENV = {"SLURM_ARRAY_TASK_ID": "2"}
NOX_GRID_SESSIONS = ("ablations", "paper_tables")
#: grid runs restricted to seed 0: nox sessions and grid files
ONE_SEED = ("paper_tables", "ablations/paper_table.yaml")
PERF_SELECT = "test_inference and student"
PERF_THRESHOLD = "1000000"
TUNE_TRIALS = "2"
NOT_RUN = {"pip install": "installs packages"}
TIMEOUT_S = 900


@dataclass(frozen=True)
class Step:
    """One thing the guide asks the reader to do: run a ``command``, write a ``file``, run a ``script``."""

    kind: str
    text: str
    line: int
    path: str | None = None
    append: bool = False

    def __str__(self) -> str:
        return f"{self.kind}@{self.line}: {self.path or self.text.splitlines()[0][:60]}"


def guide_steps(markdown: str) -> list[Step]:
    """The steps of ``markdown``'s fenced blocks, in order (module doc, rule 1)."""
    steps: list[Step] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        fence = re.match(r"^```(\w+)(.*)$", lines[i])
        if not fence:
            i += 1
            continue
        lang, attrs, start = fence.group(1), fence.group(2), i + 1
        end = next(j for j in range(start, len(lines)) if lines[j].startswith("```"))
        body = "\n".join(lines[start:end]) + "\n"
        title = re.search(r'title="([^"]+)"', attrs)
        if lang == "bash":
            steps += [Step("command", text, start + 1 + offset) for offset, text in bash_commands(body)]
        elif title:
            steps.append(Step("file", body, start, title.group(1), append=" append" in attrs))
            if title.group(1).startswith(".github/workflows/"):
                steps += [Step("command", run, start) for run in workflow_runs(body)]
        elif lang == "python":
            steps.append(Step("script", body, start))
        i = end + 1
    return steps


def bash_commands(body: str) -> list[tuple[int, str]]:
    """``(line offset, command)`` per logical line of a bash block; comment and blank lines skipped."""
    out, pending, first = [], "", 0
    for offset, line in enumerate(body.splitlines()):
        if not pending:
            first = offset
            if not line.strip() or line.lstrip().startswith("#"):
                continue
        if line.rstrip().endswith("\\"):
            pending += line.strip()[:-1].rstrip() + " "
            continue
        out.append((first, (pending + line.strip()).strip()))
        pending = ""
    assert not pending, f"bash block ends inside a continued command: {pending!r}"
    return out


def workflow_runs(body: str) -> list[str]:
    """The ``run:`` commands of a GitHub Actions workflow."""
    jobs = yaml.safe_load(body)["jobs"]
    return [step["run"].strip() for job in jobs.values() for step in job["steps"] if "run" in step]


def options_of(command: str) -> set[str]:
    """Option strings of ``skd-bench COMMAND`` (from the real parser)."""
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return set(sub.choices[command]._option_string_actions)


@dataclass(frozen=True)
class Prepared:
    text: str
    cwd: str  # "work" or "clone"
    skip: str | None = None


def prepare(command: str, work: Path, cuda: bool = False) -> Prepared:
    """``command`` as this test runs it (module doc, rules 2-6)."""
    for prefix, why in NOT_RUN.items():
        if command.startswith(prefix):
            return Prepared(command, "work", f"not run: {why}")
    argv = shlex.split(command, comments=True)
    if "--executor" in argv and argv[argv.index("--executor") + 1] == "ray" and not importlib.util.find_spec("ray"):
        return Prepared(command, "work", "needs the ray extra (pip install -e '.[ray]')")
    prog, text, cwd = argv[0], command, "work"
    if prog == "nox":
        session = argv[argv.index("-s") + 1]
        text = "nox --no-venv --no-install" + text[len("nox"):]
        takes_profile, perf = session in NOX_GRID_SESSIONS, session == "perf"
        one_seed = session in ONE_SEED
        if (takes_profile or perf) and "--" not in argv:
            text = re.sub(r"(\s#.*)?$", r" --\1", text, count=1)
    else:
        sub = _sub_command(argv)
        perf = sub == "perf"
        takes_profile = sub in COMMANDS and "--profile" in options_of(sub)
        one_seed = sub == "run" and any(a in ONE_SEED for a in argv)
        if sub in SMOKE_COMMANDS:
            for paper, smoke in SMOKE_PRESETS.items():
                text = re.sub(rf"(?<=[\s,]){re.escape(paper)}(?=[\s,]|$)", smoke, text)
    if perf:
        if not (ROOT / ".git").exists():
            return Prepared(command, "clone", f"{ROOT} is not a git checkout: perf needs one")
        cwd = "clone"
        if "--select" not in argv:
            text = _add_option(text, f"--select {shlex.quote(PERF_SELECT)}")
        if "--threshold" in argv:
            text = re.sub(r"--threshold[ =]\S+", f"--threshold {PERF_THRESHOLD}", text)
        else:
            text = _add_option(text, f"--threshold {PERF_THRESHOLD}")
    if one_seed and "--only" not in argv:
        text = _add_option(text, "--only seed=0")
    if prog != "nox" and sub == "tune":
        if "--trials" not in argv:
            text = _add_option(text, f"--trials {TUNE_TRIALS}")
        text = _add_option(text, "--tuned-dir tuned")
    if takes_profile:
        if re.search(r"--profile[ =]\S+", text):
            text = re.sub(r"--profile[ =]\S+", "--profile smoke", text)
        else:
            text = _add_option(text, "--profile smoke")
    text = re.sub(r"--size \d+ \d+", f"--size {' '.join(SIZE)}", text)
    if not cuda:
        text = re.sub(r"--device[ =]cuda\S*", "--device cpu", text)
    for placeholder in sorted(PLACEHOLDERS, key=len, reverse=True):
        text = text.replace(placeholder, str(work / PLACEHOLDERS[placeholder][1]))
    stray = [p for p in re.findall(r"(?:^|[\s=:])(/[^\s,]+)", text) if not p.startswith(str(work))]
    assert not stray, f"{command!r}: absolute path(s) {stray} are not placeholders this test maps (PLACEHOLDERS)"
    return Prepared(text, cwd)


def _sub_command(argv: list[str]) -> str | None:
    """The ``skd-bench`` sub-command of ``argv`` (also through ``python -m bench`` or a launcher
    ``python FILE.py``), None for other programs."""
    if argv[0] == "skd-bench":
        rest = argv[1:]
    elif argv[0] in ("python", "python3") and len(argv) > 2 and (argv[1:3] == ["-m", "bench"]
                                                               or argv[1].endswith(".py")):
        rest = argv[3:] if argv[1] == "-m" else argv[2:]
    else:
        return None
    return rest[0] if rest and (rest[0] in COMMANDS or rest[0] == "perf") else None


def _add_option(text: str, option: str) -> str:
    """``option`` appended to the command, before a trailing ``# comment``."""
    return re.sub(r"(\s+#.*)?$", lambda m: f" {option}{m.group(1) or ''}", text, count=1)


def run_command(prepared: Prepared, cwd: Path) -> subprocess.CompletedProcess:
    """Run one prepared command with bash in ``cwd``."""
    return subprocess.run(["bash", "-c", prepared.text], cwd=cwd, env={**os.environ, **ENV}, capture_output=True,
                          text=True, timeout=TIMEOUT_S)


def _tail(proc: subprocess.CompletedProcess, chars: int = 4000) -> str:
    return (proc.stdout + proc.stderr)[-chars:]


# --- the tiny data behind the placeholders ------------------------------------------------------
def _png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def _pair(seed: int, shape: tuple[int, int] = (40, 48)) -> tuple[np.ndarray, np.ndarray]:
    """A smooth clean image and a streaked ("rainy") copy, uint8 RGB."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:shape[0], 0:shape[1]] / max(shape)
    clean = np.stack([0.2 + 0.6 * x, 0.3 + 0.4 * y, 0.5 + 0.2 * np.sin(6 * x + seed)], axis=-1)
    rain = clean + (rng.random(shape) < 0.05)[..., None] * 0.5
    to8 = lambda a: (np.clip(a, 0, 1) * 255).round().astype(np.uint8)  # noqa: E731
    return to8(rain), to8(clean)


def make_data(kind: str, path: Path) -> None:
    seed = sum(path.as_posix().encode())  # different images in each folder
    if kind == "rain13k":
        for i in range(3):
            lq, gt = _pair(seed + i)
            _png(path / "input" / f"{i + 1}.png", lq)
            _png(path / "target" / f"{i + 1}.png", gt)
    elif kind == "rain100":
        for i in range(2):
            lq, gt = _pair(seed + i)
            _png(path / "rainy" / f"rain-{i + 1:03d}.png", lq)
            _png(path / f"norain-{i + 1:03d}.png", gt)
    elif kind == "checkpoint":
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        torch.save({"params": build_model(SMOKE_PRESETS["restormer"]).state_dict()}, path)  # official format
    elif kind == "folder":
        path.mkdir(parents=True, exist_ok=True)
    else:
        raise ValueError(kind)


def make_workspace(work: Path) -> Path:
    """The working directory of the guide's commands (module doc, rules 2 and 5)."""
    shutil.copy(ROOT / "noxfile.py", work / "noxfile.py")
    shutil.copytree(ROOT / "ablations", work / "ablations")
    for kind, rel in PLACEHOLDERS.values():
        make_data(kind, work / rel)
    restored, reference = _pair(20, (48, 48))
    _png(work / FILES[0], restored)
    _png(work / FILES[1], reference)
    return work


STEPS = guide_steps(GUIDE.read_text())


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = make_workspace(tmp_path_factory.mktemp("guide"))
    return {"work": work}


def _clone(places: dict) -> Path:
    """A git clone of the repository, with this tree's noxfile (for ``perf``: it needs history)."""
    if "clone" not in places:
        clone = places["work"].parent / "clone"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        has_main = subprocess.run(["git", "-C", str(clone), "rev-parse", "--verify", "--quiet", "origin/main"],
                                  capture_output=True).returncode == 0
        if not has_main:  # a checkout without a main branch (e.g. CI's detached HEAD)
            subprocess.run(["git", "-C", str(clone), "update-ref", "refs/remotes/origin/main", "HEAD"], check=True)
        shutil.copy(ROOT / "noxfile.py", clone / "noxfile.py")
        places["clone"] = clone
    return places["clone"]


@pytest.mark.slow
@pytest.mark.parametrize("step", STEPS, ids=str)
def test_guide(step: Step, workspace: dict) -> None:
    work = workspace["work"]
    if step.kind == "file":
        target = work / step.path
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("a" if step.append else "w") as f:
            f.write(step.text)
        return
    if step.kind == "script":
        script = work / f"guide_snippet_{step.line}.py"
        script.write_text(step.text)
        proc = subprocess.run([sys.executable, script.name], cwd=work, capture_output=True, text=True,
                              timeout=TIMEOUT_S)
        assert proc.returncode == 0, f"python block at docs/guide.md:{step.line} failed:\n{_tail(proc)}"
        return
    prepared = prepare(step.text, work, torch.cuda.is_available())
    if prepared.skip:
        pytest.skip(prepared.skip)
    done = workspace.setdefault("done", {})
    if (prepared.cwd, prepared.text) in done:
        pytest.skip(f"the same command as docs/guide.md:{done[prepared.cwd, prepared.text]} ran already")
    cwd = _clone(workspace) if prepared.cwd == "clone" else work
    done[prepared.cwd, prepared.text] = step.line
    proc = run_command(prepared, cwd)
    assert proc.returncode == 0, (f"docs/guide.md:{step.line}: {step.text}\nran: {prepared.text}\n"
                                  f"exit {proc.returncode}:\n{_tail(proc)}")


@pytest.mark.slow
def test_guide_outputs(workspace: dict) -> None:
    """What the guide says its commands write (after :func:`test_guide` ran them all)."""
    work = workspace["work"]
    for study in ("paper_table", "mca_temperature", "contrastive"):
        assert (work / "results" / study / "README.md").is_file(), study
        assert (work / "results" / study / "tables" / "summary.md").is_file(), study
    assert "paper_table/README.md" in (work / "results" / "README.md").read_text()
    assert (work / "rain100h_scores.json").is_file()
    [manifest] = [json.loads(p.read_text()) for p in (work / "runs" / "grids" / "my_students").glob("*.json")]
    assert {c["student"] for c in manifest["cells"]} == {"student-w12-d1111"}
    l2 = next(c for c in manifest["cells"] if c["method"] == "output_l2")
    assert l2["options"] == {"output_l2_weight": 0.25}  # the plugin method's own option
    assert (work / "results" / "my_students" / "tables" / "summary.md").is_file()


# --- the runner itself ---------------------------------------------------------------------------
def test_blocks_become_steps():
    text = ("x\n```bash\n# a comment\nskd-bench run a.yaml \\\n    --only seed=0  # machine A\n\nskd-bench models\n"
            "```\n```yaml title=\"ablations/s.yaml\"\nstudy: s\n```\n```python title=\"m.py\" append\nx = 1\n```\n"
            "```python\nprint(1)\n```\n```yaml\nnot: run\n```\n")
    steps = guide_steps(text)
    assert [(s.kind, s.text.strip(), s.path, s.append) for s in steps] == [
        ("command", "skd-bench run a.yaml --only seed=0  # machine A", None, False),
        ("command", "skd-bench models", None, False),
        ("file", "study: s", "ablations/s.yaml", False),
        ("file", "x = 1", "m.py", True),
        ("script", "print(1)", None, False),
    ]
    assert steps[0].line == 4


def test_smoke_rules(tmp_path: Path):
    def text(command: str) -> str:
        return prepare(command, tmp_path).text

    assert text("skd-bench train --profile cpu --task derain") == "skd-bench train --profile smoke --task derain"
    assert text("skd-bench run ablations/x.yaml --only seed=0  # A") == \
        "skd-bench run ablations/x.yaml --only seed=0 --profile smoke  # A"
    assert text("skd-bench profiles paper") == "skd-bench profiles paper"
    assert text("python run_mine.py run ablations/x.yaml") == "python run_mine.py run ablations/x.yaml --profile smoke"
    assert text("nox -s ablations") == "nox --no-venv --no-install -s ablations -- --profile smoke"
    assert text("nox -s paper_tables -- --set a=1") == \
        "nox --no-venv --no-install -s paper_tables -- --set a=1 --only seed=0 --profile smoke"
    assert text("skd-bench run ablations/paper_table.yaml --only seed=1") == \
        "skd-bench run ablations/paper_table.yaml --only seed=1 --profile smoke"
    assert text("nox -s ablations -- x --workers 1") == \
        "nox --no-venv --no-install -s ablations -- x --workers 1 --profile smoke"
    assert text("skd-bench throughput --models restormer,student-dckd --size 256 256 --device cuda") == \
        "skd-bench throughput --models teacher-smoke,student-smoke --size 64 64 --device cpu"
    assert text("skd-bench complexity --models restormer --size 256 256") == \
        "skd-bench complexity --models restormer --size 64 64"
    assert text("skd-bench eval --model restormer --checkpoint /ckpt/deraining.pth --data folder:/data/Rain100H") == \
        (f"skd-bench eval --model teacher-smoke --checkpoint {tmp_path}/ckpt/deraining.pth "
         f"--data folder:{tmp_path}/data/Rain100H")
    assert text("skd-bench tune ablations/tuning/kd_methods.yaml --workers 2") == \
        "skd-bench tune ablations/tuning/kd_methods.yaml --workers 2 --trials 2 --tuned-dir tuned --profile smoke"
    assert prepare("pip install nox", tmp_path).skip
    with pytest.raises(AssertionError, match="not placeholders"):
        prepare("skd-bench eval --model restormer --checkpoint /elsewhere/x.pth --data embedded:derain", tmp_path)


def test_guide_names_exist():
    """Every preset the rules map is registered, and every launcher the guide uses is one of its files."""
    assert set(SMOKE_PRESETS) | set(SMOKE_PRESETS.values()) <= set(MODELS)
    files = {s.path for s in STEPS if s.kind == "file"}
    for step in STEPS:
        if step.kind == "command" and step.text.startswith("python "):
            assert shlex.split(step.text)[1] in files, step


@pytest.mark.slow
@pytest.mark.parametrize("command, message", [
    ("skd-bench run ablations/mca_dimz.yaml --only seed=0", "mca_dimz"),  # wrong study name
    ("skd-bench status ablations/mca_dims.yaml --run-dir /shared/skd-runs", "--run-dir"),  # renamed option
    ("skd-bench grid ablations/mca_dims.yaml", "invalid choice"),  # removed sub-command
    ("nox -s paper_table -- --set train_data=folder:/data/Rain13K/train", "paper_table"),  # renamed session
])
def test_a_broken_command_fails(command: str, message: str, tmp_path: Path):
    work = tmp_path
    shutil.copy(ROOT / "noxfile.py", work / "noxfile.py")
    shutil.copytree(ROOT / "ablations", work / "ablations")
    proc = run_command(prepare(command, work), work)
    assert proc.returncode != 0 and message in proc.stdout + proc.stderr, _tail(proc)
