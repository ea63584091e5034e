"""Machine identity: every record carries the identity it was made on (bitwise reproducible within
one, not across: ``bench.execute.provenance.machine_identity``); a study whose records mix two
recorded identities says so in its captions, its HTML page and ``skd-bench status``; and the
tables mark leaders within the study's minimum detectable effect as a tie instead of bold.

The bitwise rerun within one identity is tested by tests/test_replay.py
(``test_replayed_grid_gives_the_records_of_a_plain_run``: equal metrics, weights and identity).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from test_report import GRID, write_records

from bench.cli import main
from bench.execute.provenance import identity_key, machine_identity
from bench.report import build_report
from bench.report.paper_layout import layout_frame, markdown_layout
from bench.report.power import study_power, with_power_columns
from bench.report.records import NOT_RECORDED, identity_groups, identity_line
from bench.report.stats import summarise
from bench.report.tables import TIE, markdown_table, table_frame, tie_note, tied_mdes
from bench.spec.grid import load_grid

INTEL = {"cpu": "Intel(R) Xeon(R) CPU @ 2.20GHz", "capability": "AVX512", "blas": "mkl", "mkl": "2024.2",
         "onednn": "3.12.0", "threads": 2}
AMD = {**INTEL, "cpu": "AMD EPYC 7B13", "capability": "AVX2"}


def test_a_trained_record_carries_its_machine_identity(tmp_path: Path) -> None:
    assert main(["train", "--role", "student", "--method", "scratch", "--profile", "smoke", "--device", "cpu",
                 "--runs-dir", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("cells/*/record.json")
    identity = json.loads(path.read_text())["provenance"]["identity"]
    assert identity == machine_identity("cpu") and identity["label"] == identity_key(identity)
    assert identity["cpu"] and identity["capability"] and identity["threads"] >= 1
    assert identity["label"].endswith(f"· {identity['threads']} thread" + "s" * (identity["threads"] != 1))


def test_identity_key_names_cpu_kernels_blas_threads_and_gpu() -> None:
    assert identity_key(AMD) == "AMD EPYC 7B13 · AVX2 · MKL 2024.2 · oneDNN 3.12.0 · 2 threads"
    gpu = {**AMD, "mkl": None, "blas": "open", "onednn": None, "threads": 1, "cuda_device": "NVIDIA H100",
           "cuda_capability": "9.0"}
    assert identity_key(gpu) == "AMD EPYC 7B13 · AVX2 · BLAS open · 1 thread · NVIDIA H100 sm 9.0"


def test_identity_line_flags_mixed_only_between_recorded_identities() -> None:
    a, b = identity_key(AMD), identity_key(INTEL)
    assert identity_line({}) == ""
    assert identity_line(identity_groups([NOT_RECORDED] * 3)) == "Machine identity: not recorded (the records " \
                                                                  "predate it)."
    assert identity_line(identity_groups([a, a])) == f"Machine identity: {a} (all 2 cells)."
    one = identity_line(identity_groups([NOT_RECORDED, a, a]))
    assert "Mixed" not in one and f"{a} (2 cells); not recorded for 1 cell" in one
    mixed = identity_line(identity_groups([b, NOT_RECORDED, a, a]))
    assert mixed.startswith("Mixed machine identities (2;") and f"{a} -> 2 cells; {b} -> 1 cell; not recorded -> " \
                                                                 "1 cell." in mixed


def _set_identity(path: Path, identity: dict | None) -> None:
    record = json.loads(path.read_text())
    if identity is None:
        record["provenance"].pop("identity", None)
    else:
        record["provenance"] = {**record["provenance"], "identity": {**identity, "label": identity_key(identity)}}
    path.write_text(json.dumps(record))


def test_a_study_of_two_identities_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "tiny.yaml").write_text(GRID)
    grid = load_grid(tmp_path / "tiny.yaml")
    runs = tmp_path / "runs"
    write_records(grid, runs)
    done = sorted(p for p in runs.glob("cells/*/record.json") if json.loads(p.read_text())["status"] == "done")
    assert len(done) == 7
    for i, path in enumerate(done):  # 4 cells on the AMD reference, 2 on an Intel rerun, 1 from before identities
        _set_identity(path, AMD if i < 4 else INTEL if i < 6 else None)
    expected = (f"Mixed machine identities (2; records are bitwise reproducible only within one): "
                f"{identity_key(AMD)} -> 4 cells; {identity_key(INTEL)} -> 2 cells; not recorded -> 1 cell.")
    build_report(grid, runs, tmp_path / "results")
    tables = tmp_path / "results" / "tiny" / "tables"
    assert expected in (tables / "summary.md").read_text().split("\n\n")[-1]  # the caption below the table
    tex = (tables / "summary.tex").read_text()
    assert "Mixed machine identities" in tex.split(r"\caption{")[1].split(r"\label")[0] and "->" in tex
    html = (tmp_path / "results" / "tiny" / "index.html").read_text()
    assert expected.replace(">", "&gt;") in html
    assert main(["status", str(grid.path), "--runs-dir", str(runs)]) == 0
    assert expected in capsys.readouterr().out.splitlines()

    for path in done[4:6]:  # all recorded ones on one identity again: not mixed
        _set_identity(path, AMD)
    build_report(grid, runs, tmp_path / "results")
    caption = (tables / "summary.md").read_text().split("\n\n")[-1]
    assert "Mixed" not in caption and f"Machine identity: {identity_key(AMD)} (6 cells); not recorded" in caption


def _summary(offsets: dict[str, list[float]], tasks: tuple[str, ...] = ("denoise25",)) -> pd.DataFrame:
    """A summary with its power columns: PSNR (dB) per task, label and seed = a base per seed plus
    the label's offsets (``scratch``: zero)."""
    base = [30.0, 30.5, 29.8]
    rows = [{"id": f"{task}{label}{seed}", "label": label, "task": task, "seed": seed, "method": label,
             "student": "student-smoke", "status": "done", "metrics.psnr": base[seed] + d,
             "metrics.ssim": 0.8 + d / 100, "params": 1000}
            for task in tasks for label, ds in {**offsets, "scratch": [0.0] * 3}.items() for seed, d in enumerate(ds)]
    summary = summarise(pd.DataFrame(rows))
    summary["macs_G"] = 0.1
    return with_power_columns(summary, study_power(summary))


def _teachers() -> pd.DataFrame:
    return pd.DataFrame({"task": ["denoise25"], "id": ["t"], "model": ["teacher-smoke"], "psnr": [33.0],
                         "ssim": [0.9], "params": [5000], "macs_G": [1.0]})


def _rows(text: str) -> dict[str, list[str]]:
    lines = [line for line in text.splitlines() if line.startswith("| denoise25")]
    return {line.split("|")[2].strip(): [c.strip() for c in line.split("|")[3:-1]] for line in lines}


def test_leaders_within_the_mde_tie_instead_of_bold() -> None:
    # "a" leads scratch by 0.15 dB, within the MDE (~0.4 dB at 3 seeds); "b" is 1 dB below scratch
    summary = _summary({"a": [0.10, 0.30, 0.05], "b": [-1.0, -1.1, -0.9]})
    mde = float(summary["power_mde_psnr"].iloc[0])
    assert 0.15 < mde < 1.15
    table = table_frame(summary, _teachers())
    rows = _rows(markdown_table(table, "Caption. " + tie_note(tied_mdes(table)), "t"))
    assert rows["a"][1] == f"30.25 ± 0.49 {TIE}" and rows["scratch"][1] == f"30.10 ± 0.36 {TIE}"
    assert "**" not in rows["a"][1] + rows["scratch"][1] + rows["b"][1] and TIE not in rows["b"][1]
    assert rows["a"][3].startswith("**+0.15") and TIE not in rows["a"][3]  # Δ: b is 1.15 dB behind, beyond the MDE
    assert rows["a"][2].startswith("**")  # SSIM has no study MDE: bold as before
    assert tie_note(tied_mdes(table)) == (f"{TIE}: the leading students differ by less than the study's minimum "
                                          f"detectable effect (denoise25: {mde:.2f} dB), so none of them is bold "
                                          "(CSV: tie_* columns).")
    flags = table.set_index("label")
    assert flags["tie_psnr_mean"].to_dict() == {"teacher (teacher-smoke)": False, "a": True, "b": False,
                                                "scratch": True}
    assert not flags["best_psnr_mean"].any() and flags.loc["a", "best_d_psnr"]

    clear = table_frame(_summary({"a": [1.0, 1.1, 0.9], "b": [-1.0, -1.1, -0.9]}), _teachers())
    assert _rows(markdown_table(clear, "", "t"))["a"][1].startswith("**31.")  # beyond the MDE: bold
    assert not clear.filter(like="tie_").to_numpy().any() and tied_mdes(clear) == {}


def test_the_paper_layout_ties_its_task_columns_too() -> None:
    summary = _summary({"a": [0.10, 0.30, 0.05], "b": [-1.0, -1.1, -0.9]}, ("derain", "deblur"))
    teachers = pd.concat([_teachers().assign(task=t) for t in ("derain", "deblur")], ignore_index=True)
    frame = layout_frame(summary, teachers, ["derain", "deblur"])
    rows = {line.split("|")[1].strip(): line.split("|")[2].strip()
            for line in markdown_layout(frame, ["derain", "deblur"], "", "t").splitlines()[4:] if line.startswith("|")}
    assert rows["a"].startswith("30.25") and TIE in rows["a"].split("/")[0] and "**" not in rows["a"].split("/")[0]
    assert TIE not in rows["b"] and frame.set_index("label")["tie_deblur.psnr"].to_dict() == {
        "teacher (teacher-smoke)": False, "a": True, "b": False, "scratch": True}
