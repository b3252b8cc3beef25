"""The agent and its run.

The **agent** (a subclass: networks, losses, the update) is built from an ``EnvSpec`` and its model
config alone, ``Algo(spec, **model)``, and saves exactly those as its hyperparameters: building or
loading it builds no environment and reads no run config. The **run** (environment, replay,
collector paced by the train ratio, counters, evaluation) is attached with ``attach_run(cfg)`` and
built in ``setup()``, where the rank is known; ``on_save_checkpoint`` stores its config beside the
weights (``checkpoint["run_config"]``) so a run resumes from its checkpoint alone.

The Trainer drives it like this::

    setup("fit")          build this rank's env, replay and collector (seeded by rank)
    on_fit_start          random prefill, or the saved replay when resuming
    loop:
      DataLoader          yields a (B, T) batch sampled from replay
      on_train_batch_start   collect the agent steps owed by the train ratio (policy, no_grad)
                             or return -1 (ends fit) once the env-step budget is spent
      training_step       the algorithm's update (manual optimisation)
      on_train_batch_end  count the update
    on_save_checkpoint    counters + ratio in the checkpoint; replay + RNG next to it (per rank),
                          as generation g+1 beside generation g, which the checkpoint on disk names
    checkpoint_written    once the new checkpoint is durable: generation g is removed

A kill at any moment therefore leaves a checkpoint whose replay copy exists and matches it.

Subclasses provide: ``config_class`` (a dataclass whose fields are the model keyword arguments),
``build()`` (the networks, from ``self.spec`` and ``self.config``), ``training_step`` and ``act``.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import time
import warnings
from dataclasses import asdict, fields
from typing import Any, ClassVar, cast

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from lightning_dreamer.callbacks import log_to_loggers
from lightning_dreamer.config import Config
from lightning_dreamer.data import BatchedCollector, Collector, Replay, ReplayBatches, TrainRatio, run_episodes
from lightning_dreamer.envs import make_batched_env, make_env
from lightning_dreamer.errors import ConfigError, UserError, one_line
from lightning_dreamer.spec import EnvSpec

_SPEC_CACHE: dict[str, EnvSpec] = {}


def spec_for(env_cfg) -> EnvSpec:
    """The ``EnvSpec`` of an env config (a run's ``env`` section): built once and cached."""
    key = repr(sorted((f.name, str(getattr(env_cfg, f.name))) for f in fields(env_cfg))) if hasattr(env_cfg, "__dataclass_fields__") \
        else repr(sorted((k, str(v)) for k, v in env_cfg.items()))
    if key not in _SPEC_CACHE:
        env = build_env(env_cfg, seed=0)
        _SPEC_CACHE[key] = EnvSpec.from_env(env)
        env.close()
    return _SPEC_CACHE[key]


def build_env(env_cfg, seed: int):
    """``make_env``, with any failure of the environment's own code as one line naming the env
    (and the warnings of a failed build held back: the one line says what matters)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            env = make_env(env_cfg, seed=seed)
        except ConfigError:
            raise
        except Exception as err:
            raise UserError(f"cannot build env {env_cfg.suite}:{env_cfg.name} (env.obs={env_cfg.obs}): {one_line(err)}") from None
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return env


def saved_replay_path(run_dir: str, rank: int, state: dict) -> str:
    """Where the replay copy of a checkpoint (its ``lightning_dreamer`` state) lies for ``rank``."""
    root = os.path.join(run_dir, "replay", f"saved-rank{rank}")
    generation = state.get("generation")
    if generation is None:  # checkpoints from before generations: one copy, maybe left as .old by a kill
        return root + ".old" if not os.path.exists(root) and os.path.exists(root + ".old") else root
    return os.path.join(root, f"g{generation:08d}")


def missing_replay(path: str) -> str:
    return (f"cannot resume: the checkpoint's replay buffer is missing ({path}); it is saved beside the "
            "checkpoint in run.dir. Start a new run with another run.dir")


def check_saved_replays(run_dir: str, state: dict) -> None:
    """Before a resume does any work: every rank's replay copy of this checkpoint is there and whole."""
    for rank in range(state.get("world_size", 1)):
        path = saved_replay_path(run_dir, rank, state)
        try:
            Replay.check(path, state.get("generation"))
        except FileNotFoundError:
            raise UserError(missing_replay(path)) from None


def _rng_state(generator: torch.Generator) -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
            "collector": generator.get_state()}


def _set_rng_state(state: dict, generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    generator.set_state(state["collector"])


class RLModule(L.LightningModule):
    """A model-based agent (subclass: networks, losses, update) with the plumbing of its run."""

    config_class: ClassVar[type]  # set by subclasses: the model config dataclass
    algo_name: ClassVar[str]  # set by @register_algo

    def __init__(self, spec: EnvSpec | dict[str, Any], **model: Any):
        super().__init__()
        self.spec = EnvSpec.from_dict(spec)
        names = {f.name for f in fields(self.config_class)}
        unknown = sorted(set(model) - names)
        if unknown:
            raise ConfigError(f"unknown model option(s) {unknown} for {type(self).__name__}; allowed: {', '.join(sorted(names))}")
        self.config = self.config_class(**model)
        self.save_hyperparameters({"spec": self.spec.to_dict(), **asdict(self.config)})
        self.automatic_optimization = False
        self.obs_shapes, self.action_dim, self.discrete = self.spec.obs_shapes, self.spec.action_dim, self.spec.discrete
        self.obs_keys = self.spec.obs_keys
        self.run_cfg: Config | None = None  # the run, attached by attach_run before fit
        self._run_dict: dict[str, Any] | None = None
        # Counters (all ranks step in lock-step, so they are the same everywhere).
        self.policy_steps = 0  # agent steps taken by this rank
        self.updates = 0  # gradient updates (one world model + actor + critic step each)
        self.episodes = 0
        self.last_return = math.nan
        # The checkpoint and replay copy saved together carry the same generation number.
        self.saved_generation = 0
        # One entry per fit segment (a resumed run adds one): the machine, the precision and the env
        # step it started at, so a record can say where and how its weights were trained.
        self.segments: list[dict[str, Any]] = []
        self.stop_signal: str | None = None  # set when a signal stopped the run (callbacks.PeriodicCheckpoint)
        self._resume_state: dict | None = None
        self._update_times: list[float] = []
        self.build()

    # ------------------------------------------------------------------ the run
    def attach_run(self, cfg) -> None:
        """The run this agent trains in: a validated config (``config.load_config``), read typed."""
        from omegaconf import OmegaConf

        from lightning_dreamer.config import to_dict

        self.run_cfg = cast(Config, OmegaConf.to_object(cfg))
        self._run_dict = to_dict(cfg)

    @property
    def run_config(self) -> Config:
        """The attached run's config (env, replay, run, model sections as dataclasses)."""
        if self.run_cfg is None:
            raise RuntimeError(f"{type(self).__name__} has no run attached: call attach_run(cfg) before fit")
        return self.run_cfg

    # ------------------------------------------------------------------ to override
    def build(self) -> None:
        raise NotImplementedError

    def act(self, obs: dict, is_first: torch.Tensor, state, explore: bool = True):
        raise NotImplementedError

    # ------------------------------------------------------------------ counters
    @property
    def world_size(self) -> int:
        return self.trainer.world_size if self._trainer is not None else 1

    @property
    def env_steps(self) -> int:
        """Environment frames over all ranks: agent steps x action repeat x ranks."""
        repeat = self.run_cfg.env.action_repeat if self.run_cfg is not None else 1
        return self.policy_steps * repeat * self.world_size

    def budget_spent(self) -> bool:
        return self.env_steps >= self.run_config.run.total_env_steps

    # ------------------------------------------------------------------ lifecycle
    def _rank_dir(self, kind: str) -> str:
        return os.path.join(self.run_config.run.dir, "replay", f"{kind}-rank{self.global_rank}")

    def _generation_dir(self, generation: int) -> str:
        return saved_replay_path(self.run_config.run.dir, self.global_rank, {"generation": generation})

    def setup(self, stage: str) -> None:
        if stage != "fit":
            return
        seed = self.run_config.run.seed + 1000 * self.global_rank
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)
        r, n = self.run_config.replay, self.run_config.env.num_envs
        self.replay = Replay(r.capacity, r.batch_size, r.seq_len, scratch_dir=self._rank_dir("live"), lanes=n)
        generator = torch.Generator().manual_seed(seed)
        # TorchRL envs are nn.Modules: keep them out of the module tree (state_dict, .to(), DDP).
        self.collector: Collector | BatchedCollector
        if n == 1:
            object.__setattr__(self, "env", build_env(self.run_config.env, seed=seed))
            self.collector = Collector(self.env, self.replay, self.obs_keys, generator, hold=r.prefill_hold)
        else:  # env i of rank k is seeded seed + 1000 k + i: ranks' seeds stay apart for up to 1000 envs
            spec_for(self.run_config.env)  # a broken env fails here, in one line, before workers start
            object.__setattr__(self, "env", make_batched_env(self.run_config.env, n, seed=seed))
            self.collector = BatchedCollector(self.env, self.replay, self.obs_keys, generator, hold=r.prefill_hold)
        self.ratio = TrainRatio(r.train_ratio, r.batch_size * r.seq_len, r.pretrain, num_envs=n)

    def teardown(self, stage: str) -> None:
        """Stop the worker processes of several envs (env.num_envs > 1) when a fit ends or fails."""
        env: Any = getattr(self, "env", None)
        if stage == "fit" and isinstance(getattr(self, "collector", None), BatchedCollector) and not env.is_closed:
            env.close()

    def train_dataloader(self) -> DataLoader:
        cuda = self.device.type == "cuda"
        prefetch = self.run_config.replay.prefetch
        prefetch = (2 if cuda else 0) if prefetch < 0 else prefetch
        return DataLoader(ReplayBatches(self.replay.sample, prefetch, pin=cuda), batch_size=None, num_workers=0)

    def on_fit_start(self) -> None:
        from lightning_dreamer.hardware import machine

        self._apply_compile(self.run_config.run.compile)
        self.segments.append({"machine": machine(), "precision": str(self.trainer.precision), "from_env_steps": self.env_steps})
        if self._resume_state is not None:
            self._load_replay(self._resume_state)
            _set_rng_state(self.replay.extra["rng"], self.collector.generator)
            self.print(f"resumed: {self.env_steps:,} env steps, {self.updates:,} updates, replay {len(self.replay):,} steps")
            self._resume_state = None
        else:  # replay.prefill agent steps over all envs (rounded up to a step of each)
            n = self.run_config.env.num_envs
            self.policy_steps += self.collector.step(-(-self.run_config.replay.prefill // n))
        extra, seq_len = 0, self.run_config.replay.seq_len
        while not self.replay.ready():  # no episode as long as seq_len yet: keep collecting
            if extra >= 10 * seq_len:
                raise UserError(f"no episode reached replay.seq_len={seq_len} steps in "
                                f"{self.policy_steps:,} random agent steps; lower replay.seq_len")
            self.policy_steps += self.collector.step(seq_len)
            extra += seq_len
        self._record_episodes(log=False)
        self.print(self.replay.describe())

    def _apply_compile(self, setting: str) -> None:
        """``run.compile`` for an agent whose update has compilable passes (``compile_passes``)."""
        compile_passes: Any = getattr(self, "compile_passes", None)
        if compile_passes is None:
            return
        mode, why = setting, "run.compile"
        if setting == "auto":
            from lightning_dreamer.hardware import auto_compile

            mode, why = auto_compile(self.device.type)
            why = f"auto: {why}"
        compile_passes(None if mode == "eager" else mode)
        later = "" if mode == "eager" else "; the first updates compile it (minutes: about 5 at Atari size on an H100)"
        self.print(f"compile: {mode} ({why}){later}")

    def _policy(self, obs, is_first, state):
        obs = {k: v.to(self.device) for k, v in obs.items()}
        return self.act(obs, is_first.to(self.device), state, explore=True)

    def _load_replay(self, state: dict) -> None:
        """The replay copy saved with the checkpoint being resumed (its generation)."""
        path = saved_replay_path(self.run_config.run.dir, self.global_rank, state)
        try:
            self.replay.load(path, state.get("generation"))
        except FileNotFoundError:
            raise UserError(missing_replay(path)) from None
        expected = state.get("replay_steps")
        if self.global_rank == 0 and expected is not None and len(self.replay) != expected:
            raise UserError(f"cannot resume: the replay buffer at {path} holds {len(self.replay):,} steps, "
                            f"the checkpoint counted {expected:,}")

    def checkpoint_written(self) -> None:
        """Called on every rank once the checkpoint naming ``self.saved_generation`` is durable: remove
        this rank's other replay copies (the previous generation, and any a killed run left)."""
        root = self._rank_dir("saved")
        if not os.path.isdir(root):
            return
        keep = os.path.basename(self._generation_dir(self.saved_generation))
        for name in os.listdir(root):
            path = os.path.join(root, name)
            if name == keep:
                continue
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:  # the flat files of a copy saved before generations
                os.remove(path)
        for legacy in (root + ".old", root + ".tmp"):
            shutil.rmtree(legacy, ignore_errors=True)

    def on_train_batch_start(self, batch, batch_idx: int):
        if self.trainer.should_stop:  # a signal's checkpoint was just saved (callbacks.PeriodicCheckpoint)
            return -1
        if self.budget_spent():
            self.trainer.should_stop = True
            return -1  # ends the (endless) epoch, and with should_stop the fit
        steps = self.ratio.owed()
        if steps:
            self.collect(steps)
        self._step_started = time.perf_counter()
        return None

    def count_update(self) -> None:
        self.updates += 1
        self._update_times = (self._update_times + [time.perf_counter() - self._step_started])[-20:]

    def collect(self, steps: int) -> None:
        """Take ``steps`` steps of every env with the exploring policy (eval mode, no_grad) into replay."""
        was_training = self.training
        self.eval()
        with torch.no_grad():
            taken = self.collector.step(steps, self._policy)
        self.train(was_training)
        self.policy_steps += taken
        self._record_episodes()

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        self.count_update()

    def log_update(self, logs: dict) -> None:
        """Log this update's scalars (tensors or floats) every ``run.log_every`` updates, straight to
        the loggers at step = updates: the one x-axis of everything logged (episodes, evaluations,
        videos too), ours rather than Lightning's batch counter, so a resumed run's logs continue
        exactly from its checkpoint. Called by ``training_step`` before the update is counted."""
        if (self.updates + 1) % self.run_config.run.log_every:
            return
        metrics = {k: float(v) for k, v in logs.items()}
        metrics.update({"progress/env_steps": float(self.env_steps), "progress/updates": float(self.updates + 1)})
        log_to_loggers(self, metrics, self.updates + 1)

    def _record_episodes(self, log: bool = True) -> None:
        """Count finished episodes; log each one (straight to the loggers, so none is dropped
        or repeated by the per-batch logging cadence)."""
        for ret, length in self.collector.pop_finished():
            self.episodes += 1
            self.last_return = ret
            if log:
                metrics = {"train/return": ret, "train/length": float(length), "progress/env_steps": float(self.env_steps)}
                log_to_loggers(self, metrics, self.log_step)

    def optimise(self, optimizer, loss: torch.Tensor, clip: float) -> None:
        """One manual optimisation step with gradient-norm clipping (Lightning handles AMP/DDP)."""
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if clip > 0:
            self.clip_gradients(optimizer, gradient_clip_val=clip, gradient_clip_algorithm="norm")
        optimizer.step()

    def openloop_video(self, batch, context: int = 5, count: int = 4) -> torch.Tensor:
        """Real frames | the model's frames (``context`` observed, the rest imagined) as a uint8 video."""
        raise NotImplementedError

    @property
    def log_step(self) -> int:
        """The x-axis of everything logged (see ``log_update``): gradient updates, or for World
        Models stage steps."""
        return self.updates

    def updates_per_second(self) -> float:
        return len(self._update_times) / sum(self._update_times) if self._update_times else math.nan

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self, env, episodes: int, record_first: bool = False):
        """Play ``episodes`` with the deterministic policy: (returns, lengths, frames)."""
        was_training = self.training
        self.eval()

        def policy(obs, is_first, state):
            return self.act({k: v.to(self.device) for k, v in obs.items()}, is_first.to(self.device), state, explore=False)

        try:
            return run_episodes(env, policy, episodes, self.obs_keys, record_first)
        finally:
            self.train(was_training)

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if hasattr(self, "replay"):
            # Generation g+1 goes beside g (which the checkpoint on disk names) and g is removed
            # only after this checkpoint is durable (checkpoint_written).
            self.saved_generation += 1
            self.replay.extra = {"rng": _rng_state(self.collector.generator)}
            self.replay.save(self._generation_dir(self.saved_generation), self.saved_generation)
        checkpoint["lightning_dreamer"] = {
            "policy_steps": self.policy_steps,
            "updates": self.updates,
            "episodes": self.episodes,
            "last_return": self.last_return,
            "ratio": self.ratio.state_dict() if hasattr(self, "ratio") else None,
            "world_size": self.world_size,
            "generation": self.saved_generation,
            "log_step": self.log_step,  # where a resumed run's logs continue (updates)
            "replay_steps": len(self.replay) if hasattr(self, "replay") else None,
            "segments": self.segments,
        }
        if self._run_dict is not None:
            checkpoint["run_config"] = self._run_dict  # the run, beside the agent's hyperparameters

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("lightning_dreamer")
        if state is None:
            return
        self.policy_steps = state["policy_steps"] * state.get("world_size", 1) // max(self.world_size, 1)
        self.updates = state["updates"]
        self.episodes = state["episodes"]
        self.last_return = state["last_return"]
        self.saved_generation = state.get("generation") or 0
        self.segments = list(state.get("segments") or [])  # none in checkpoints older than the field
        if hasattr(self, "ratio") and state["ratio"] is not None:
            self.ratio.load_state_dict(state["ratio"])
        self._resume_state = state
