"""Sequence replay on disk: TorchRL ``TensorDictReplayBuffer`` + ``LazyMemmapStorage`` + ``SliceSampler``.

One entry per agent step, in the layout the RSSM expects (see nets/rssm.py)::

    pixels / state   observation x_t (uint8 CHW frames / float32 vector)
    action           a_t, the action that led to x_t (zeros when is_first)
    reward           r_t, the reward received on arriving at x_t (0 when is_first)
    is_first         x_t starts an episode
    is_terminal      x_t is a terminal state (not a time-limit truncation)
    episode          episode id, unique per rank; the SliceSampler never mixes two ids

Sampled batches are ``(B, T)`` slices of one episode each; ``is_first`` marks a slice that
starts its episode. Episodes shorter than T are not sampled.
"""

from __future__ import annotations

import os
import queue
import shutil
import threading

import torch
from tensordict import TensorDict
from torch.utils.data import IterableDataset
from torchrl.data import LazyMemmapStorage, SliceSampler, TensorDictReplayBuffer

from lightning_dreamer.errors import UserError
from lightning_dreamer.files import crash_point, fsync_dir, torch_save_synced

META = "lightning_dreamer.pt"  # the file of a saved copy that describes it


class _Lane:
    """The steps of one environment, in order: a TorchRL buffer whose slices never cross lanes."""

    def __init__(self, capacity: int, seq_len: int, scratch_dir: str | None):
        self.capacity = capacity
        self.buffer = TensorDictReplayBuffer(
            storage=LazyMemmapStorage(capacity, scratch_dir=scratch_dir, existsok=True),
            sampler=SliceSampler(slice_len=seq_len, traj_key="episode", strict_length=True),
        )
        self.writes = 0  # entries ever added (to find the oldest once the buffer wraps)
        self.run = (-1, 0)  # (episode id, steps) of the newest episode
        self.longest = 0  # the most steps any episode has had in this lane (a cheap readiness check)

    def __len__(self) -> int:
        return len(self.buffer)

    def add(self, step: TensorDict) -> None:
        self.buffer.add(step)
        self.writes += 1
        episode = int(step["episode"])
        self.run = (episode, self.run[1] + 1 if self.run[0] == episode else 1)
        self.longest = max(self.longest, self.run[1])

    def logical_indices(self) -> torch.Tensor:
        """Storage indices from the oldest entry to the newest."""
        n = len(self)
        start = self.writes % self.capacity if self.writes > self.capacity else 0
        return (torch.arange(n) + start) % self.capacity

    def longest_episode(self) -> int:
        if not len(self):
            return 0
        episodes = self.buffer.storage[: len(self)]["episode"]
        return int(torch.unique(episodes, return_counts=True)[1].max())


class Replay:
    """Sequence replay of one rank (see the module docstring): add steps, sample ``(B, T)`` slices, save/load.

    With ``lanes > 1`` (``env.num_envs`` environments stepped together) each environment's steps go
    to a lane of their own (``capacity // lanes`` steps, its own memory-mapped storage), so that a
    slice never mixes two environments; a batch draws each of its B slices from a lane chosen in
    proportion to the lane's size, among the lanes that hold an episode of ``seq_len`` steps."""

    def __init__(self, capacity: int, batch_size: int, seq_len: int, scratch_dir: str | None = None, lanes: int = 1):
        if lanes < 1 or capacity // lanes < seq_len:
            raise ValueError(f"replay.capacity {capacity:,} cannot hold {lanes} lanes of replay.seq_len={seq_len} steps")
        self.capacity, self.batch_size, self.seq_len = capacity, batch_size, seq_len
        dirs = [scratch_dir] if lanes == 1 else [scratch_dir and os.path.join(scratch_dir, f"lane{i}") for i in range(lanes)]
        self.lanes = [_Lane(capacity // lanes, seq_len, d) for d in dirs]
        self.next_episode = 0
        self.extra: dict = {}  # saved and restored with the buffer (per-rank RNG state, ...)
        self.bytes_per_step = 0
        self.keys: tuple = ()
        # Held by add, sample, save and load: a prefetching thread (ReplayBatches) samples while
        # the main thread collects.
        self.lock = threading.RLock()

    @property
    def buffer(self) -> TensorDictReplayBuffer:
        """The TorchRL buffer of the first (with one environment: the only) lane."""
        return self.lanes[0].buffer

    @property
    def writes(self) -> int:
        return sum(lane.writes for lane in self.lanes)

    def __len__(self) -> int:
        return sum(len(lane) for lane in self.lanes)

    def add(self, step: TensorDict, lane: int = 0) -> None:
        with self.lock:
            if not self.bytes_per_step:
                self.keys = tuple(step.keys())
                self.bytes_per_step = sum(v.numel() * v.element_size() for v in step.values(True, True))
            self.lanes[lane].add(step)

    def describe(self) -> str:
        total = self.bytes_per_step * self.capacity
        where = getattr(self.buffer.storage, "scratch_dir", None)
        lanes = ""
        if len(self.lanes) > 1:
            where = where and os.path.dirname(os.path.normpath(where))
            lanes = f", one lane of {self.lanes[0].capacity:,} steps per env"
        return (f"replay: capacity {self.capacity:,} steps x {self.bytes_per_step:,} B/step = "
                f"{total / 2**30:.2f} GiB on disk (memory-mapped{lanes}) in {where or 'a temporary directory'}")

    def ready(self) -> bool:
        """True once some episode holds at least seq_len steps."""
        return any(lane.longest >= self.seq_len for lane in self.lanes)

    def sample(self, with_index: bool = False) -> dict[str, torch.Tensor]:
        """A ``(B, T)`` batch of slices; ``with_index`` adds ``index``, each entry's storage index
        (to look up per-step data kept outside the buffer, such as cached latents; one lane only)."""
        with self.lock:
            if len(self.lanes) == 1:
                batch = self.buffer.sample(self.batch_size * self.seq_len).reshape(self.batch_size, self.seq_len)
            else:
                batch = self._sample_lanes()
        out = {k: batch.get(k).contiguous() for k in self.keys}
        if with_index:
            if len(self.lanes) > 1:
                raise ValueError("storage indices name a step of a single-lane replay only")
            out["index"] = batch.get("index").reshape(self.batch_size, self.seq_len)
        return out

    def _sample_lanes(self) -> TensorDict:
        ready = [lane for lane in self.lanes if lane.longest >= self.seq_len]
        if not ready:
            raise RuntimeError(f"no lane of the replay buffer holds an episode of {self.seq_len} steps yet")
        sizes = torch.tensor([float(len(lane)) for lane in ready])
        counts = torch.bincount(torch.multinomial(sizes, self.batch_size, replacement=True), minlength=len(ready))
        parts = [lane.buffer.sample(int(n) * self.seq_len).reshape(int(n), self.seq_len)
                 for lane, n in zip(ready, counts.tolist()) if n]
        return torch.cat(parts, 0)

    def _single(self, what: str) -> None:
        if len(self.lanes) > 1:
            raise ValueError(f"{what} reads a single-lane replay (env.num_envs = 1)")

    def read(self, key: str, start: int, stop: int) -> torch.Tensor:
        """``key`` at storage indices ``start`` to ``stop`` (those ``index`` refers to)."""
        self._single("read")
        return self.buffer.storage[start:stop][key]

    def sample_steps(self, n: int, key: str, generator: torch.Generator | None = None) -> torch.Tensor:
        """``key`` at ``n`` stored steps drawn uniformly with replacement (e.g. frames for a VAE)."""
        self._single("sample_steps")
        pick = torch.randint(len(self), (n,), generator=generator)
        return self.buffer.storage[pick][key]

    def sample_first(self, n: int, key: str, generator: torch.Generator | None = None) -> torch.Tensor:
        """``key`` at ``n`` episode starts (``is_first``) drawn uniformly with replacement."""
        self._single("sample_first")
        firsts = torch.nonzero(self.buffer.storage[: len(self)]["is_first"]).flatten()
        if not len(firsts):
            raise RuntimeError("the replay buffer holds no episode start")
        pick = firsts[torch.randint(len(firsts), (n,), generator=generator)]
        return self.buffer.storage[pick][key]

    # ---------------------------------------------------------------- persistence
    def _logical_indices(self) -> torch.Tensor:
        """Storage indices of the first lane from the oldest entry to the newest."""
        return self.lanes[0].logical_indices()

    def save(self, path: str, generation: int | None = None, chunk: int = 16384) -> None:
        with self.lock:
            self._save(path, generation, chunk)

    def _save(self, path: str, generation: int | None = None, chunk: int = 16384) -> None:
        """Write the filled part of the buffer, oldest first, to the directory ``path``: first to
        ``path.tmp`` (every file fsynced), then renamed, so ``path`` is whole or absent. A stale
        ``path`` (a killed run's copy that no checkpoint names) is replaced. ``generation`` ties
        the copy to the checkpoint saved with it. Cost is proportional to the data, not the capacity."""
        tmp = path + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        lengths = []
        for j, lane in enumerate(self.lanes):  # lane 0's chunks keep the names of a single-lane copy
            prefix = "chunk" if j == 0 else f"lane{j}-chunk"
            indices = lane.logical_indices()
            lengths.append(len(indices))
            for i, start in enumerate(range(0, len(indices), chunk)):
                part = lane.buffer.storage[indices[start : start + chunk]]
                torch_save_synced({k: part.get(k).contiguous() for k in self.keys}, os.path.join(tmp, f"{prefix}{i:06d}.pt"))
                crash_point("replay_chunk")
        meta = {"next_episode": self.next_episode, "extra": self.extra, "keys": self.keys,
                "bytes_per_step": self.bytes_per_step, "length": sum(lengths), "lane_lengths": lengths,
                "generation": generation}
        torch_save_synced(meta, os.path.join(tmp, META))
        fsync_dir(tmp)
        shutil.rmtree(path, ignore_errors=True)
        os.replace(tmp, path)
        fsync_dir(os.path.dirname(os.path.abspath(path)))
        crash_point("replay_done")

    @staticmethod
    def _damaged(path: str, name: str, err: Exception) -> UserError:
        return UserError(f"the saved replay buffer at {path} is damaged ({name}: {type(err).__name__}); "
                         "resume from a checkpoint whose replay is whole, or start a new run.dir")

    @staticmethod
    def _read_meta(path: str, generation: int | None) -> dict:
        """The description of a saved copy: FileNotFoundError if there is none, UserError if it is
        damaged or of another generation than ``generation`` (when given)."""
        if not os.path.exists(os.path.join(path, META)):
            raise FileNotFoundError(f"no saved replay buffer at {path}")
        try:
            meta = torch.load(os.path.join(path, META), weights_only=False)
        except Exception as err:
            raise Replay._damaged(path, META, err) from None
        if generation is not None and meta.get("generation") != generation:
            raise UserError(f"the saved replay buffer at {path} is generation {meta.get('generation')}, "
                            f"the checkpoint expects {generation}")
        return meta

    @staticmethod
    def check(path: str, generation: int | None = None) -> None:
        """Cheap checks of a saved copy before a resume starts any work: it exists, its description
        reads, its generation matches, and every chunk's zip directory (at the end of the file, so a
        truncated chunk fails) opens. ``load`` still reads every byte."""
        import zipfile

        Replay._read_meta(path, generation)
        for name in sorted(f for f in os.listdir(path) if "chunk" in f):
            try:
                zipfile.ZipFile(os.path.join(path, name)).close()
            except Exception as err:
                raise Replay._damaged(path, name, err) from None

    def load(self, path: str, generation: int | None = None) -> None:
        with self.lock:
            self._load(path, generation)

    def _load(self, path: str, generation: int | None = None) -> None:
        """Fill the (empty) buffer from a copy written by ``save``; ``generation``, if given, must
        match the one saved. Raises FileNotFoundError (no copy) or UserError (a damaged one)."""
        meta = self._read_meta(path, generation)
        lengths = meta.get("lane_lengths", [meta["length"]])
        if len(lengths) != len(self.lanes):
            raise UserError(f"the saved replay buffer at {path} holds {len(lengths)} lane(s) (env.num_envs), "
                            f"this run has {len(self.lanes)}; resume with env.num_envs={len(lengths)}")
        self.next_episode, self.extra = meta["next_episode"], meta["extra"]
        self.keys, self.bytes_per_step = tuple(meta["keys"]), meta["bytes_per_step"]
        for j, (lane, expected) in enumerate(zip(self.lanes, lengths)):
            prefix = "chunk" if j == 0 else f"lane{j}-chunk"
            loaded = 0
            for name in sorted(f for f in os.listdir(path) if f.startswith(prefix)):
                try:
                    part = torch.load(os.path.join(path, name), weights_only=True)
                except Exception as err:
                    raise self._damaged(path, name, err) from None
                size = next(iter(part.values())).shape[0]
                lane.buffer.extend(TensorDict(part, batch_size=[size]))
                loaded += size
            lane.writes, lane.longest = loaded, lane.longest_episode()  # a resumed run starts new episodes
            if loaded != expected:
                raise UserError(f"the saved replay buffer at {path} is incomplete ({loaded} of {expected} steps"
                                f"{f' in lane {j}' if len(lengths) > 1 else ''})")


class ReplayBatches(IterableDataset):
    """Endless stream of ``(B, T)`` batches for ``DataLoader(batch_size=None, num_workers=0)``.

    With ``prefetch > 0`` a thread samples up to that many batches ahead (in pinned memory with
    ``pin``, so the copy to the GPU does not block) while the update runs: the replay's lock keeps
    it apart from the collector's writes. Which steps a batch holds then depends on timing, so a
    run is not bit-for-bit repeatable (replay.prefetch: on by default on a GPU only)."""

    def __init__(self, sample_fn, prefetch: int = 0, pin: bool = False):
        self.sample_fn, self.prefetch, self.pin = sample_fn, prefetch, pin

    def __iter__(self):
        if self.prefetch <= 0:
            while True:
                yield self.sample_fn()
        ready: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def work() -> None:
            while not stop.is_set():
                try:
                    item = self.sample_fn()
                    if self.pin:
                        item = {k: v.pin_memory() for k, v in item.items()}
                except BaseException as err:  # handed to the consumer, raised there
                    item = err
                while not stop.is_set():
                    try:
                        ready.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if isinstance(item, BaseException):
                    return

        thread = threading.Thread(target=work, name="replay-prefetch", daemon=True)
        thread.start()
        try:
            while True:
                item = ready.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
