"""Files that survive a kill at any moment: atomic, fsynced writes beside their final path.

Lightning's own atomic save writes through fsspec, whose local transaction stages the file in
``$TMPDIR`` and moves it over: across filesystems that move is a copy, and a kill during it left a
0-byte ``last.ckpt``. Here the temporary file lies beside the final one (same filesystem, so the
rename is atomic), is fsynced before the rename, and the directory is fsynced after it.

``crash_point(name)`` is the fault injection the kill tests use: with
``LIGHTNING_DREAMER_CRASH_AT=name:n`` in the environment, the n-th time the process passes that
point it kills itself with SIGKILL (no cleanup, as a power cut or ``kill -9`` would). The points
are ``replay_chunk`` (inside the replay write), ``replay_done`` (replay written, checkpoint not),
``checkpoint_tmp`` (checkpoint written to its temporary file, not renamed) and
``checkpoint_done`` (checkpoint renamed, old replay not yet removed).
"""

from __future__ import annotations

import glob
import os
import signal
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

_CRASH_COUNTS: dict[str, int] = {}


def crash_point(name: str) -> None:
    spec = os.environ.get("LIGHTNING_DREAMER_CRASH_AT")
    if not spec:
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    _CRASH_COUNTS[name] = _CRASH_COUNTS.get(name, 0) + 1
    if _CRASH_COUNTS[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def fsync_dir(path: str) -> None:
    """Make a rename or a new entry in ``path`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - Windows
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def torch_save_synced(obj: Any, path: str) -> None:
    """``torch.save`` to ``path`` and fsync it (no rename: the caller's directory is the unit)."""
    with open(path, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


def save_atomically(obj: Any, path: str, crash: str | None = None) -> None:
    """``torch.save`` ``obj`` to ``path`` so that ``path`` always holds either the old or the new
    file, whole, whatever happens during the call."""
    path = os.path.abspath(path)
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    for stale in glob.glob(glob.escape(path) + ".tmp-*"):  # left by a process killed mid-write
        os.remove(stale)
    tmp = f"{path}.tmp-{os.getpid()}"
    torch_save_synced(obj, tmp)
    if crash:
        crash_point(crash)
    os.replace(tmp, path)
    fsync_dir(folder)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, with the temporary file beside the checkpoint (see above)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        save_atomically(checkpoint, str(path), crash="checkpoint_tmp")
        crash_point("checkpoint_done")
