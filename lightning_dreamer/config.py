"""Configuration: a typed schema, YAML loading with OmegaConf, and one-line errors.

A run's configuration has five sections::

    algo:     name of a registered algorithm ("dreamer_v2", ...)
    env:      EnvConfig      -> lightning_dreamer.envs.make_env
    replay:   ReplayConfig   -> lightning_dreamer.data
    run:      RunConfig      -> the CLI (run directory, budget, logging, checkpoints)
    model:    the algorithm's own dataclass (keys = constructor arguments of its nets)
    trainer:  free-form keyword arguments of ``lightning.Trainer`` (validated against its signature)

YAML files are merged left to right (so size presets are overlays), then dotted
``key=value`` overrides from the command line. Interpolation (``${env.name}``) works.
"""

from __future__ import annotations

import difflib
import inspect
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import (
    ConfigAttributeError,
    ConfigKeyError,
    GrammarParseError,
    InterpolationResolutionError,
    OmegaConfBaseException,
    ValidationError,
)


from lightning_dreamer.errors import ConfigError


@dataclass
class EnvConfig:
    """The ``env`` section: which environment, what the agent observes, action repeat and the like."""

    # Which family of environments: "dmc" (dm_control), "atari" (ALE via gymnasium) or
    # "gym" (any gymnasium id, including "some.module:MyEnv-v0" for your own environments).
    suite: str = "dmc"
    # dmc: "<domain>_<task>" (e.g. cartpole_swingup); atari: the game (e.g. Pong); gym: the env id.
    name: str = "cartpole_swingup"
    # What the agent sees: "pixels" (an image), "state" (a flat vector) or "both".
    obs: str = "pixels"
    # Square image side after resizing; frames are stored as uint8.
    image_size: int = 64
    # Convert frames to one grey channel (Atari).
    grayscale: bool = False
    # Each agent action is repeated this many times; rewards are summed.
    action_repeat: int = 2
    # Max-pool the last two frames of an action repeat (Atari flicker).
    max_pool: bool = False
    # Probability of repeating the previous action instead of the new one (ALE v5: 0.25).
    sticky_actions: float = 0.0
    # Episode cap in agent steps (after action repeat); 0 keeps the environment's own limit.
    time_limit: int = 0
    # Extra keyword arguments for gymnasium.make / the ALE.
    kwargs: dict[str, Any] = field(default_factory=dict)
    # Environments per rank (Dreamer), stepped together in worker processes (TorchRL ParallelEnv)
    # and acted in by one batched policy call; env steps and the train ratio count all of them.
    num_envs: int = 1

    LIMITS: ClassVar[dict] = {"image_size": ">=1", "action_repeat": ">=1", "sticky_actions": "[0,1)", "time_limit": ">=0",
                              "num_envs": ">=1"}


@dataclass
class ReplayConfig:
    """The ``replay`` section: buffer size, ``(B, T)`` batches, the train ratio and the random prefill."""

    # Transitions kept per rank (oldest are overwritten).
    capacity: int = 1_000_000
    # Sequences per batch (B) and their length (T).
    batch_size: int = 16
    seq_len: int = 50
    # Replayed steps (B*T per update) per agent step: updates happen every B*T/train_ratio agent steps.
    train_ratio: float = 160.0
    # Agent steps collected with a uniformly random policy before training starts.
    prefill: int = 1000
    # Agent steps each random prefill action is held. 1 (the papers' random policy) draws a new
    # uniform action every step; holding it longer gives temporally correlated random rollouts
    # that travel further (cartpole swingup: 1 never lifts the pole near upright, 10 does).
    prefill_hold: int = 1
    # Gradient updates on the prefill data before collection resumes.
    pretrain: int = 100
    # Batches sampled ahead by a thread while the update runs; -1: 2 on a GPU, 0 (none) on a CPU.
    prefetch: int = -1

    LIMITS: ClassVar[dict] = {"capacity": ">=2", "batch_size": ">=1", "seq_len": ">=2", "train_ratio": ">0",
                              "prefill": ">=0", "prefill_hold": ">=1", "pretrain": ">=0", "prefetch": ">=-1"}


@dataclass
class RunConfig:
    """The ``run`` section: directory, seed, env-step budget, checkpoints, logging and evaluation."""

    # Where checkpoints, logs, videos and the replay buffer of this run live.
    dir: str = "runs/${algo}-${env.suite}-${env.name}"
    seed: int = 0
    # Stop after this many environment frames (agent steps x action_repeat), summed over ranks.
    total_env_steps: int = 100_000
    # Save <dir>/checkpoints/last.ckpt (with the replay buffer) every N updates (for World Models: stage steps).
    checkpoint_every: int = 1000
    # Log scalars every N gradient updates.
    log_every: int = 50
    # Run evaluation episodes every N environment frames (0 disables).
    eval_every: int = 10_000
    eval_episodes: int = 1
    # Write real-vs-imagined videos every N environment frames (0 disables).
    video_every: int = 0
    # Any of "csv", "tensorboard", "wandb" (wandb runs offline unless WANDB_MODE says otherwise).
    loggers: list[str] = field(default_factory=lambda: ["csv", "tensorboard"])
    # Torch threads per process; 0 = cores / processes.
    threads: int = 0
    # torch.compile the update's passes (Dreamer V1/V2): "auto" (see hardware.auto_compile), "eager",
    # or a torch.compile mode; "reduce-overhead" on a GPU also captures them in CUDA graphs.
    compile: str = "auto"
    # Host memory freed by one update kept for the next (glibc malloc: no mmap, no trim; see
    # hardware.keep_freed_memory): "auto" (on when training on a CPU), "on" or "off".
    keep_freed_memory: str = "auto"

    LIMITS: ClassVar[dict] = {"seed": ">=0", "total_env_steps": ">=1", "checkpoint_every": ">=0", "log_every": ">=1",
                              "eval_every": ">=0", "eval_episodes": ">=1", "video_every": ">=0", "threads": ">=0",
                              "compile": ("auto", "eager", "default", "reduce-overhead", "max-autotune",
                                          "max-autotune-no-cudagraphs"),
                              "keep_freed_memory": ("auto", "on", "off")}
    LOGGERS: ClassVar[tuple] = ("csv", "tensorboard", "wandb")


@dataclass
class Config:
    """A whole run: the algorithm's name and the sections above, ``model`` being that algorithm's config."""

    algo: str = "dreamer_v2"
    env: EnvConfig = field(default_factory=EnvConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    run: RunConfig = field(default_factory=RunConfig)
    model: Any = None
    trainer: dict[str, Any] = field(default_factory=dict)


def closest(key: str, allowed: list[str]) -> str:
    match = difflib.get_close_matches(key, allowed, n=1, cutoff=0.5)
    return f" Did you mean '{match[0]}'?" if match else ""


def _allowed_keys(schema: DictConfig, path: str) -> list[str]:
    node = OmegaConf.select(schema, path) if path else schema
    return sorted(str(k) for k in node.keys()) if isinstance(node, DictConfig) else []


def explain(err: OmegaConfBaseException, schema: DictConfig) -> ConfigError:
    full_key = getattr(err, "full_key", None) or ""
    if isinstance(err, (ConfigKeyError, ConfigAttributeError)):
        parent, _, key = full_key.rpartition(".")
        allowed = _allowed_keys(schema, parent)
        where = f"in '{parent}'" if parent else "at the top level"
        return ConfigError(
            f"unknown config key '{full_key}' {where}.{closest(key, allowed)} Allowed: {', '.join(allowed)}"
        )
    first_line = str(err).splitlines()[0]
    if isinstance(err, ValidationError):
        return ConfigError(f"bad value for '{full_key}': {first_line}")
    if isinstance(err, (InterpolationResolutionError, GrammarParseError)):
        return ConfigError(f"bad interpolation at '{full_key}': {first_line}")
    return ConfigError(f"config error at '{full_key}': {first_line}")


def _allowed(value: Any, rule: Any) -> bool:
    """``value`` against a rule: a tuple of choices, ``">=a"``, ``">a"``, or an interval like ``"(0,1]"``."""
    if isinstance(rule, tuple):
        return value in rule
    if rule.startswith(">="):
        return value >= float(rule[2:])
    if rule.startswith(">"):
        return value > float(rule[1:])
    low, high = (float(x) for x in rule[1:-1].split(","))
    return (value >= low if rule[0] == "[" else value > low) and (value <= high if rule[-1] == "]" else value < high)


def _describe(rule: Any) -> str:
    if isinstance(rule, tuple):
        return "one of " + ", ".join(str(c) for c in rule)
    if rule.startswith(">="):
        return ">= " + rule[2:]
    if rule.startswith(">"):
        return "> " + rule[1:]
    return f"in {rule}"


def check_limits(section: str, node: Any, limits: dict) -> None:
    """Raise ConfigError for the first key of ``node`` outside its declared limits (a dict value:
    each of its entries). ``None`` means "unset/auto" and is never checked."""
    for key, rule in limits.items():
        value = node[key]
        items = value.items() if hasattr(value, "items") else [(None, value)]
        for sub, v in items:
            if v is None:
                continue
            if not _allowed(v, rule):
                name = f"{section}.{key}" + (f".{sub}" if sub is not None else "")
                raise ConfigError(f"bad value for '{name}': {v!r}; allowed: {_describe(rule)}")


def check_relations(cfg: DictConfig) -> None:
    """What no single key can say: limits that relate two keys."""
    r, e = cfg.replay, cfg.env
    if r.capacity < r.seq_len:
        raise ConfigError(f"replay.capacity ({r.capacity}) must be >= replay.seq_len ({r.seq_len}): a sequence must fit in the buffer")
    if e.num_envs > 1 and cfg.algo == "world_models":
        raise ConfigError(f"env.num_envs={e.num_envs} is for Dreamer agents; World Models collects with one env "
                          "(its CMA-ES steps env workers of its own: model.env_workers), so allowed: 1")
    if r.capacity // e.num_envs < r.seq_len:
        raise ConfigError(f"replay.capacity ({r.capacity}) split among env.num_envs={e.num_envs} lanes must hold "
                          f"replay.seq_len ({r.seq_len}) steps each: raise replay.capacity or lower env.num_envs")
    if e.obs in ("pixels", "both") and e.image_size != 64:
        raise ConfigError(f"bad value for 'env.image_size': {e.image_size}; the convolutional encoders take 64x64 frames, so allowed: 64")
    for name in cfg.run.loggers:
        if name not in RunConfig.LOGGERS:
            raise ConfigError(f"unknown logger '{name}' in run.loggers.{closest(str(name), list(RunConfig.LOGGERS))} "
                              f"Allowed: {', '.join(RunConfig.LOGGERS)}")
    if not str(cfg.run.dir).strip():
        raise ConfigError("run.dir is empty; give the directory for checkpoints and logs, e.g. run.dir=runs/my_run")


def _count_devices(devices: Any, available: int, accelerator: str) -> int:
    """How many devices ``trainer.devices`` asks for (ConfigError if it cannot be read)."""
    allowed = f"allowed: auto, -1 (all), a count from 1 to {available}, or a list of {accelerator} indices"
    if devices in ("auto", -1, "-1"):
        return available
    if isinstance(devices, str):
        parts = [p for p in devices.split(",") if p.strip()]
        try:
            numbers = [int(p) for p in parts]
        except ValueError:
            raise ConfigError(f"bad value for 'trainer.devices': {devices!r}; {allowed}") from None
        return len(numbers) if "," in devices else (numbers[0] if numbers else 0)
    if isinstance(devices, (list, tuple)):
        return len(devices)
    if isinstance(devices, int) and not isinstance(devices, bool):
        return devices
    raise ConfigError(f"bad value for 'trainer.devices': {devices!r}; {allowed}")


def validate_trainer(trainer: dict[str, Any]) -> None:
    from lightning import Trainer

    from lightning_dreamer.hardware import PRECISIONS, cpu_cores

    allowed = [p for p in inspect.signature(Trainer.__init__).parameters if p != "self"]
    for key in trainer:
        if key not in allowed:
            raise ConfigError(
                f"unknown trainer option 'trainer.{key}'.{closest(key, allowed)} "
                f"Allowed: any argument of lightning.Trainer ({', '.join(allowed)})"
            )
    precision = trainer.get("precision", "auto")
    if str(precision) not in PRECISIONS:
        raise ConfigError(f"bad value for 'trainer.precision': {precision!r}; allowed: {', '.join(PRECISIONS)}")
    max_time = trainer.get("max_time")
    if isinstance(max_time, str) and not re.fullmatch(r"\d+:\d{1,2}:\d{1,2}:\d{1,2}", max_time):
        raise ConfigError(f"bad value for 'trainer.max_time': {max_time!r}; allowed: DD:HH:MM:SS, e.g. 00:12:00:00")
    accelerator = str(trainer.get("accelerator", "auto"))
    accelerators = ("auto", "cpu", "gpu", "cuda")
    if accelerator not in accelerators:
        raise ConfigError(f"bad value for 'trainer.accelerator': {accelerator!r}; allowed: {', '.join(accelerators)}")
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if accelerator in ("gpu", "cuda") and not gpus:
        raise ConfigError(f"trainer.accelerator={accelerator}: this machine has no CUDA GPU that torch can use; "
                          "allowed here: cpu or auto (`python -m lightning_dreamer doctor` shows what it has)")
    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and gpus > 0)
    available, kind = (gpus, "GPU") if on_gpu else (cpu_cores(), "CPU")
    if "devices" in trainer:
        count = _count_devices(trainer["devices"], available, kind)
        if count < 1 or count > available:
            extra = " (one process per device; more processes than cores only slows every one down)" if kind == "CPU" else ""
            raise ConfigError(f"trainer.devices={trainer['devices']} asks for {count} {kind} devices, but this machine has "
                              f"{available}{extra}; allowed: 1 to {available}")


def read_layers(paths: list[str]) -> list[DictConfig]:
    layers = []
    for path in paths:
        try:
            layer = OmegaConf.load(path)
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except IsADirectoryError:
            raise ConfigError(f"config file {path} is a directory; give a .yaml file") from None
        except Exception as err:  # yaml errors
            raise ConfigError(f"cannot parse config file {path}: {str(err).splitlines()[0]}") from None
        if not isinstance(layer, DictConfig):
            raise ConfigError(f"config file {path} must hold a mapping at the top level")
        layers.append(layer)
    return layers


def to_dict(cfg: DictConfig) -> dict[str, Any]:
    """A config as plain, resolved dicts (what a checkpoint stores)."""
    out = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(out, dict)
    return out  # type: ignore[return-value]  # omegaconf types its keys loosely
