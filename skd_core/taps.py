"""Feature taps: forward hooks on dotted module paths (torchdistill ``forward_hook`` style).

Models stay untouched: a :class:`FeatureTaps` registers one forward hook per dotted path (the
names of ``model.named_modules()``, e.g. ``"encoder_level1"`` or ``"encoder_level1.0.attn"``) and
records each hooked module's output while it is *recording*. An unknown path fails at once and
names the nearest valid paths. Hooks record only inside :meth:`FeatureTaps.recording` (or
:meth:`FeatureTaps.run`), so two tap sets on one model (the distiller's teacher taps and the
contrastive loss's teacher extractor) never see each other's forwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from .errors import ConfigError, unknown

#: The seven level outputs of Restormer's U-shape (encoder 1-3, latent, decoder 3-1), in forward
#: order. Shapes for ``dim`` d and a ``B, 3, H, W`` input: d@H, 2d@H/2, 4d@H/4, 8d@H/8, 4d@H/4,
#: 2d@H/2, 2d@H (``decoder_level1`` is taken before the refinement blocks).
DEFAULT_TAPS: tuple[str, ...] = (
    "encoder_level1", "encoder_level2", "encoder_level3", "latent",
    "decoder_level3", "decoder_level2", "decoder_level1",
)


class _AllTapsRecorded(Exception):  # noqa: N818 -- a control-flow signal, not an error
    """Raised by a hook to end a forward early once every tap has recorded (see ``run``)."""


def module_paths(model: nn.Module) -> list[str]:
    """Every dotted path a tap can name on ``model`` (the root module itself excluded)."""
    return [name for name, _ in model.named_modules() if name]


def resolve(model: nn.Module, path: str, name: str | None = None) -> nn.Module:
    """The submodule at dotted ``path``; an unknown path raises ``UnknownNameError`` naming the
    closest valid paths (``name`` says which model, default its class name)."""
    modules = dict(model.named_modules())
    if not path or path not in modules:
        raise unknown("tap path", path, module_paths(model), where=name or type(model).__name__)
    return modules[path]


class FeatureTaps:
    """Forward hooks on ``model`` at dotted ``paths``; outputs are recorded while recording.

    ``add(path)`` returns the hook's removable handle, ``remove(path)`` drops one hook,
    ``clear()`` drops all; used as a context manager the taps are cleared on exit. Recorded
    features are the modules' outputs as they are (not detached, not copied): run a frozen model
    under ``torch.no_grad()`` to keep them free of autograd history.
    """

    def __init__(self, model: nn.Module, paths: Iterable[str] = (), name: str | None = None) -> None:
        self.model = model
        self.name = name or type(model).__name__  # for messages, e.g. "student"
        self._handles: dict[str, RemovableHandle] = {}
        self._record: dict[str, Any] | None = None
        self._stop_when_complete = False
        for path in paths:
            self.add(path)

    @property
    def paths(self) -> tuple[str, ...]:
        """The tapped paths, in the order they were added."""
        return tuple(self._handles)

    def add(self, path: str) -> RemovableHandle:
        """Hook the module at ``path``; an unknown path raises ``UnknownNameError``."""
        if path in self._handles:
            raise ConfigError(f"tap path {path!r} is already tapped on {self.name}")
        module = resolve(self.model, path, self.name)
        handle = module.register_forward_hook(self._hook(path))
        self._handles[path] = handle
        return handle

    def remove(self, path: str) -> None:
        """Remove the hook at ``path`` (one of :attr:`paths`)."""
        if path not in self._handles:
            raise unknown("tapped path", path, self._handles, where=self.name)
        self._handles.pop(path).remove()

    def clear(self) -> None:
        """Remove every hook; the model is as it was before."""
        for handle in self._handles.values():
            handle.remove()
        self._handles.clear()

    def __enter__(self) -> FeatureTaps:
        return self

    def __exit__(self, *exc: object) -> None:
        self.clear()

    def _hook(self, path: str) -> Callable[[nn.Module, tuple[Any, ...], Any], None]:
        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            if self._record is None:
                return
            self._record[path] = output
            if self._stop_when_complete and len(self._record) == len(self._handles):
                raise _AllTapsRecorded

        return hook

    @contextmanager
    def recording(self) -> Iterator[dict[str, Any]]:
        """Record the tapped outputs of forwards run inside the block into the yielded dict
        (path -> output; the last call wins if a module runs twice)."""
        if self._record is not None:
            raise RuntimeError("FeatureTaps.recording() is not re-entrant")
        self._record = {}
        try:
            yield self._record
        finally:
            self._record = None

    def run(self, *inputs: Any, stop_early: bool = False) -> tuple[Any, dict[str, Any]]:
        """``model(*inputs)`` with recording: returns ``(output, features)``.

        With ``stop_early`` the forward is abandoned as soon as every tap has recorded (the
        output is then ``None``): the layers after the last needed tap never run.
        """
        self._stop_when_complete = stop_early
        try:
            with self.recording() as features:
                try:
                    output = self.model(*inputs)
                except _AllTapsRecorded:
                    output = None
        finally:
            self._stop_when_complete = False
        missing = [p for p in self._handles if p not in features]
        if missing:
            raise ConfigError(f"taps {missing} on {self.name} did not run in its forward")
        return output, features


def as_feature_map(path: str, value: Any, who: str) -> torch.Tensor:
    """``value`` if it is a ``B, C, H, W`` tensor, else a ``ConfigError`` naming the tap."""
    if not isinstance(value, torch.Tensor) or value.dim() != 4:
        got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ConfigError(f"tap {path!r} of the {who} must output a B, C, H, W tensor, got {got}")
    return value
