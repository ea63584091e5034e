"""Real benchmark sets on disk: layout presets that find (input, target) files and pair them by name.

Pairing is always by file name (stem, i.e. without extension; the extensions may differ), never by
sorted order. Hidden files and non-image files are ignored. Every input must find its target and
every target must be used, else :class:`DatasetError` names the unpaired file. Presets:

- ``restormer``: ``input/`` + ``target/`` with identical stems (the Restormer ``Datasets`` layout).
- ``rain13k``: Rain13K / Test100 / Test1200 / Test2800 / Rain1400: ``input/`` + ``target/`` (or
  ``rainy_image/`` + ``ground_truth/``); an input ``N_k`` with no target ``N_k`` pairs with target
  ``N`` (the Rain1400 convention of Fu et al. 2017: 14 rainy versions ``N_1..N_14`` of clean ``N``).
- ``rain100``: Rain100L/H, either ``rainy/rain-001.png`` + ``norain-001.png`` beside ``rainy/`` (or
  both in the one folder), or ``rain/norain-1x2.png`` + ``norain/norain-1.png``.
- ``gopro``: GoPro / HIDE: ``<sequence>/{blur,sharp}/`` (``blur_gamma/`` ignored); names become
  ``<sequence>_<stem>`` so they stay unique. A folder holding ``blur/`` + ``sharp/`` is one sequence.
- ``sidd``: ``*NOISY_SRGB*`` + ``*GT_SRGB*`` in the same (per-scene) folder, searched recursively;
  names become ``<scene folders>_<stem without NOISY_>``. Other files (RAW ``.MAT``) are ignored.
- ``clean``: clean images only, directly in the folder (CBSD68, Kodak24, McMaster, Urban100); the
  input is made by a task's degradation.

With no layout given, :func:`detect_layout` takes the first preset, in the order above, whose
folders are present.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..registry import Registry
from .images import is_image_file
from .pairs import DatasetError


@dataclass(frozen=True)
class FilePair:
    """The files of one pair; ``lq`` is ``None`` for a clean-only set (degraded synthetically)."""

    name: str
    gt: Path
    lq: Path | None = None


@dataclass(frozen=True)
class Layout:
    """A folder layout: ``detect(root)`` says whether ``root`` looks like it; ``find(root)`` pairs files."""

    name: str
    find: Callable[[Path], list[FilePair]]
    detect: Callable[[Path], bool]
    description: str
    paired: bool = True


LAYOUTS: Registry[Layout] = Registry("dataset layout")


def find_pairs(root: Path, layout: str | None = None) -> tuple[Layout, list[FilePair]]:
    """The layout used (given or detected) and the file pairs of folder ``root``, sorted by name."""
    root = _require_dir(Path(root), "dataset folder")
    chosen = LAYOUTS.get(layout) if layout is not None else detect_layout(root)
    files = sorted(chosen.find(root), key=lambda f: f.name)
    if not files:
        raise DatasetError(f"no images found in {root} (layout {chosen.name!r})")
    seen: dict[str, FilePair] = {}
    for f in files:
        if f.name in seen:
            raise DatasetError(f"two pairs are both named {f.name!r}: {seen[f.name].gt} and {f.gt}")
        seen[f.name] = f
    return chosen, files


def detect_layout(root: Path) -> Layout:
    """The first registered layout whose ``detect`` accepts ``root``."""
    for name in LAYOUTS:
        if LAYOUTS.get(name).detect(root):
            return LAYOUTS.get(name)
    raise DatasetError(f"cannot tell the layout of {root}: no images or known sub-folders; "
                       f"pass a layout ({', '.join(LAYOUTS.names())})")


def _require_dir(path: Path, what: str = "folder") -> Path:
    if not path.is_dir():
        raise DatasetError(f"{what} not found: {path}")
    return path


def _images(folder: Path) -> dict[str, Path]:
    """Image files directly in ``folder`` by stem; two files with one stem are an error."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if is_image_file(path):
            if path.stem in found:
                raise DatasetError(f"two images share the name {path.stem!r}: {found[path.stem]} and {path}")
            found[path.stem] = path
    return found


def _match(inputs: dict[str, Path], targets: dict[str, Path], target_dir: Path,
           candidates: Callable[[str], list[str]] = lambda stem: [stem], prefix: str = "") -> list[FilePair]:
    """Pair each input with the first of ``candidates(stem)`` found among ``targets``; all must pair."""
    pairs, used = [], set()
    for stem, path in inputs.items():
        names = candidates(stem)
        hit = next((n for n in names if n in targets), None)
        if hit is None:
            raise DatasetError(f"unpaired file {path}: no target named {names[0]}.* in {target_dir}")
        used.add(hit)
        pairs.append(FilePair(prefix + stem, targets[hit], path))
    for stem, path in targets.items():
        if stem not in used:
            raise DatasetError(f"unpaired file {path}: no input pairs with it")
    return pairs


def _both(root: Path, options: tuple[tuple[str, str], ...]) -> tuple[Path, Path] | None:
    """The first (input, target) pair of sub-folder names that both exist under ``root``."""
    return next(((root / a, root / b) for a, b in options if (root / a).is_dir() and (root / b).is_dir()), None)


def _in_out(root: Path, options: tuple[tuple[str, str], ...], layout: str) -> tuple[Path, Path]:
    found = _both(root, options)
    if found is None:
        for a, b in options:
            if (root / a).is_dir() or (root / b).is_dir():
                missing = root / (b if (root / a).is_dir() else a)
                raise DatasetError(f"folder not found: {missing} (layout {layout!r})")
        wanted = " or ".join(f"{a}/ + {b}/" for a, b in options)
        raise DatasetError(f"folder not found: {root / options[0][0]} (layout {layout!r} expects {wanted})")
    return found


# --- restormer ---------------------------------------------------------------------------------
_RESTORMER = (("input", "target"),)


def _find_restormer(root: Path) -> list[FilePair]:
    inp, tgt = _in_out(root, _RESTORMER, "restormer")
    return _match(_images(inp), _images(tgt), tgt)


# --- rain13k -----------------------------------------------------------------------------------
_RAIN13K = (("input", "target"), ("rainy_image", "ground_truth"))


def _rain1400_candidates(stem: str) -> list[str]:
    """``N_k`` -> ``[N_k, N]`` (Rain1400: the k-th rainy version of clean image ``N``)."""
    m = re.fullmatch(r"(.+)_\d+", stem)
    return [stem, m.group(1)] if m else [stem]


def _find_rain13k(root: Path) -> list[FilePair]:
    inp, tgt = _in_out(root, _RAIN13K, "rain13k")
    return _match(_images(inp), _images(tgt), tgt, _rain1400_candidates)


# --- rain100 -----------------------------------------------------------------------------------
def _find_rain100(root: Path) -> list[FilePair]:
    if (root / "rain").is_dir() or (root / "norain").is_dir():  # rain/norain-1x2.png + norain/norain-1.png
        inp, tgt = _in_out(root, (("rain", "norain"),), "rain100")
        return _match(_images(inp), _images(tgt), tgt,
                      lambda s: [s[:-2], s] if s.lower().endswith("x2") else [s])
    here = _images(root)  # rainy/rain-001.png + norain-001.png (or both in root)
    rainy = _images(root / "rainy") if (root / "rainy").is_dir() else {
        s: p for s, p in here.items() if s.startswith("rain-")}
    clean = {s: p for s, p in here.items() if s.startswith("norain-")}
    for stem, path in here.items():
        if stem not in clean and stem not in rainy:
            raise DatasetError(f"unpaired file {path}: layout 'rain100' expects rain-*/norain-* names")
    return _match(rainy, clean, root, lambda s: ["no" + s])


def _detect_rain100(root: Path) -> bool:
    return any((root / d).is_dir() for d in ("rainy", "rain", "norain")) or any(
        s.startswith("norain-") for s in _images(root))


# --- gopro -------------------------------------------------------------------------------------
def _find_gopro(root: Path) -> list[FilePair]:
    sequences = [root] if _is_sequence(root) else [
        d for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    pairs = []
    for seq in sequences:
        if not _is_sequence(seq):
            raise DatasetError(f"{seq} is not a GoPro/HIDE sequence folder (it has no blur/ or sharp/)")
        inp, tgt = _in_out(seq, (("blur", "sharp"),), "gopro")
        pairs += _match(_images(inp), _images(tgt), tgt, prefix=f"{seq.name}_")
    return pairs


def _is_sequence(folder: Path) -> bool:
    return (folder / "blur").is_dir() or (folder / "sharp").is_dir()


def _detect_gopro(root: Path) -> bool:
    return _is_sequence(root) or any(_is_sequence(d) for d in root.iterdir() if d.is_dir())


# --- sidd --------------------------------------------------------------------------------------
def _find_sidd(root: Path) -> list[FilePair]:
    pairs = []
    for folder in sorted({p.parent for p in root.rglob("*SRGB*") if is_image_file(p)}):
        found = _images(folder)
        noisy = {s: p for s, p in found.items() if "NOISY_SRGB" in s}
        clean = {s: p for s, p in found.items() if "GT_SRGB" in s}
        prefix = "".join(f"{part}_" for part in folder.relative_to(root).parts)
        for pair in _match(noisy, clean, folder, lambda s: [s.replace("NOISY_SRGB", "GT_SRGB")]):
            pairs.append(FilePair(prefix + pair.name.replace("NOISY_", ""), pair.gt, pair.lq))
    return pairs


def _detect_sidd(root: Path) -> bool:
    return any(True for _ in root.glob("*NOISY_SRGB*")) or any(True for _ in root.glob("*/*NOISY_SRGB*"))


# --- clean -------------------------------------------------------------------------------------
def _find_clean(root: Path) -> list[FilePair]:
    return [FilePair(stem, path) for stem, path in _images(root).items()]


LAYOUTS.register("restormer", Layout(
    "restormer", _find_restormer, lambda r: _both(r, _RESTORMER) is not None,
    "input/ + target/, same names (Restormer Datasets layout)"))
LAYOUTS.register("rain13k", Layout(
    "rain13k", _find_rain13k, lambda r: _both(r, _RAIN13K) is not None,
    "Rain13K/Test100/Test1200/Test2800/Rain1400: input/+target/ or rainy_image/+ground_truth/, N_k -> N"))
LAYOUTS.register("rain100", Layout(
    "rain100", _find_rain100, _detect_rain100,
    "Rain100L/H: rainy/rain-001 + norain-001, or rain/norain-1x2 + norain/norain-1"))
LAYOUTS.register("gopro", Layout(
    "gopro", _find_gopro, _detect_gopro, "GoPro/HIDE: <sequence>/{blur,sharp}/, names <sequence>_<stem>"))
LAYOUTS.register("sidd", Layout(
    "sidd", _find_sidd, _detect_sidd, "SIDD: *NOISY_SRGB* + *GT_SRGB* in per-scene folders"))
LAYOUTS.register("clean", Layout(
    "clean", _find_clean, lambda r: bool(_images(r)),
    "clean images only (CBSD68, Kodak24, McMaster, Urban100); inputs made by the task", paired=False))
