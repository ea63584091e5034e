"""What a grid run shows of each cell when it ends: one line on stderr naming its variant (for logs
and pipes, where no bar is drawn). The per-step bar itself is skd_core's and names method, student,
task and seed only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .cells import Cell


def cell_desc(study: str, cell: Cell) -> str:
    """``"kd_methods denoise25 skd seed=1"``: the study, task, variant label and seed of ``cell``."""
    return f"{study} {cell.task} {cell.label} seed={cell.seed}"


def finished_line(cell_id: str, desc: str, status: str, record: Mapping[str, Any] | None,
                  problem: str | None) -> str:
    """``"cell <id> <desc>: done, PSNR 28.31 dB, 12.3 s"`` (test PSNR; seconds of training plus
    scoring), or the status and problem of a cell that is not done."""
    if status != "done" or record is None:
        return f"cell {cell_id} {desc}: {status}" + (f", {problem}" if problem else "")
    seconds = (record.get("training") or {}).get("seconds", 0.0) + record.get("eval_seconds", 0.0)
    return f"cell {cell_id} {desc}: done, PSNR {record['metrics']['psnr']:.2f} dB, {seconds:.1f} s"
