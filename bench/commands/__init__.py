"""Sub-commands of ``skd-bench``; each module registers one with ``add_parser``, whose help is
its entry in :data:`COMMANDS` (what ``skd-bench --help`` lists without importing the module)."""

from __future__ import annotations

#: verb -> (module in :mod:`bench.commands`, its one-line help); each module has
#: ``add_parser(subparsers)``, which registers the verb with this help and sets ``func(args) -> int``
COMMANDS: dict[str, tuple[str, str]] = {
    "models": ("models", "list model presets and their parameter counts"),
    "methods": ("methods", "list the distillation methods (built-in and plugins) and their options"),
    "profiles": ("profiles", "list the scale profiles, or show one in full"),
    "complexity": ("complexity", "params, MACs, conv-only MACs and FLOPs at a stated input size"),
    "throughput": ("throughput", "inference images/s, latency and peak memory (CUDA or CPU)"),
    "metrics": ("metrics", "PSNR (dB) and SSIM of a restored image against its reference"),
    "train": ("train", "train a teacher or a student (scratch or distilled) and score it"),
    "eval": ("eval", "PSNR/SSIM of a model checkpoint on a test set"),
    "run": ("run", "run grid specs; resumable, parallel, local or Ray"),
    "status": ("status", "show which cells of a grid are done, running, failed or pending"),
    "report": ("report", "write tables (Markdown, LaTeX, CSV), figures and pages of grids"),
    "tune": ("tune", "tune the methods' options with the same number of trials each, on the validation split"),
    "perf": ("perf", "benchmark the working tree against a baseline; exit 1 on a regression"),
    "ship-teachers": ("ship_teachers", "copy finished teachers of a profile into ./teachers/ or --out (used by "
                                       "later runs only while config, code and data match)"),
}
