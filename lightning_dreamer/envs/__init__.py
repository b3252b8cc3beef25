"""One ``make_env(cfg)`` for every suite, built from TorchRL environments.

Every environment returned has the same interface, whatever the suite:

* observations ``pixels`` (uint8, ``(C, S, S)``) and/or ``state`` (float32 vector),
* ``action`` (one-hot for discrete action spaces, a bounded float vector otherwise),
* ``reward`` summed over the action repeat, and ``done`` / ``terminated`` / ``truncated``.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from typing import cast

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering for dm_control

import torch  # noqa: E402
from torchrl.envs import CatTensors, DTypeCastTransform, ExcludeTransform, RenameTransform, StepCounter, TransformedEnv  # noqa: E402

from lightning_dreamer.errors import ConfigError  # noqa: E402
from lightning_dreamer.envs.transforms import ActionRepeat, ImageTransform, RenderDMC, StickyActions  # noqa: E402

SUITES = ("dmc", "atari", "gym")
OBS_MODES = ("pixels", "state", "both")


def _closest(name: str, options) -> str:
    match = difflib.get_close_matches(name, list(options), n=3, cutoff=0.5)
    return f" Did you mean {', '.join(repr(m) for m in match)}?" if match else ""


def _dmc_tasks() -> dict[str, tuple[str, str]]:
    from dm_control import suite

    return {f"{d}_{t}": (d, t) for d, t in suite.ALL_TASKS}


def _gym_registry():
    import gymnasium as gym

    from lightning_dreamer.envs.point import register

    register()
    try:
        import ale_py

        gym.register_envs(ale_py)
    except ImportError:  # pragma: no cover - ale-py is a dependency
        pass
    return gym.envs.registry


def validate_env_config(cfg) -> None:
    """Raise ConfigError naming what is wrong with an env section and what is allowed."""
    if cfg.suite not in SUITES:
        raise ConfigError(f"unknown env.suite '{cfg.suite}'.{_closest(cfg.suite, SUITES)} Allowed: {', '.join(SUITES)}")
    if cfg.obs not in OBS_MODES:
        raise ConfigError(f"unknown env.obs '{cfg.obs}'. Allowed: {', '.join(OBS_MODES)}")
    if cfg.action_repeat < 1:
        raise ConfigError(f"env.action_repeat must be >= 1, got {cfg.action_repeat}")
    if not 0.0 <= cfg.sticky_actions < 1.0:
        raise ConfigError(f"env.sticky_actions must be in [0, 1), got {cfg.sticky_actions}")
    if cfg.suite == "dmc":
        tasks = _dmc_tasks()
        if cfg.name not in tasks:
            raise ConfigError(
                f"unknown dm_control task '{cfg.name}' (env.name is '<domain>_<task>').{_closest(cfg.name, tasks)} "
                f"Allowed: {', '.join(sorted(tasks))}"
            )
    elif cfg.suite == "atari":
        games = sorted(k[4:-3] for k in _gym_registry() if k.startswith("ALE/") and k.endswith("-v5"))
        if cfg.name not in games:
            raise ConfigError(f"unknown Atari game '{cfg.name}'.{_closest(cfg.name, games)} Allowed: {', '.join(games)}")
    else:
        registry = _gym_registry()
        if ":" in cfg.name:  # "package.module:EnvId": gymnasium imports the module itself
            module = cfg.name.split(":")[0]
            try:
                __import__(module)
            except ImportError as err:
                raise ConfigError(f"env.name '{cfg.name}': cannot import module '{module}' ({err})") from None
        elif cfg.name not in registry:
            raise ConfigError(
                f"unknown gymnasium env id '{cfg.name}'.{_closest(cfg.name, registry)} "
                "Register your env with gymnasium.register or use 'your.module:EnvId-v0'"
            )


def _image_and_vector_keys(env) -> tuple[list, list]:
    images, vectors = [], []
    for key, spec in env.observation_spec.items(True, True):
        if spec.dtype == torch.uint8 and len(spec.shape) == 3:
            images.append(key)
        elif len(spec.shape) <= 1:
            vectors.append(key)
    return images, vectors


def make_env(cfg, seed: int = 0) -> TransformedEnv:
    """Build the environment described by an ``EnvConfig`` (see config.py)."""
    from torchrl.envs import DMControlEnv, GymEnv

    validate_env_config(cfg)
    want_pixels = cfg.obs in ("pixels", "both")
    want_state = cfg.obs in ("state", "both")
    kwargs = dict(cfg.kwargs or {})
    transforms = []
    if cfg.suite == "dmc":
        domain, task = _dmc_tasks()[cfg.name]
        base = DMControlEnv(domain, task, from_pixels=False, **kwargs)
        transforms.append(ActionRepeat(cfg.action_repeat))
        if want_pixels:
            transforms.append(RenderDMC(cfg.image_size))
    else:
        _gym_registry()
        if cfg.suite == "atari":
            import gymnasium as gym
            from torchrl.envs import GymWrapper

            from lightning_dreamer.envs.atari import ALEActionRepeat

            ale_kwargs = {"frameskip": 1, "repeat_action_probability": cfg.sticky_actions, "full_action_space": False,
                          "obs_type": "grayscale" if cfg.grayscale else "rgb", **kwargs}
            try:
                raw = gym.make(f"ALE/{cfg.name}-v5", **ale_kwargs)
            except TypeError as err:
                raise ConfigError(f"env.kwargs rejected by the ALE: {err}") from None
            base = GymWrapper(ALEActionRepeat(raw, cfg.action_repeat, cfg.max_pool, cfg.grayscale))
        else:
            base = GymEnv(cfg.name, **kwargs)
            images, _ = _image_and_vector_keys(base)
            if want_pixels and not images:  # render vector-observation envs
                modes = base._env.unwrapped.metadata.get("render_modes") or []
                if "rgb_array" not in modes:
                    raise ConfigError(f"env '{cfg.name}' has no image observation and cannot render one (its render_modes: "
                                      f"{list(modes)}, rgb_array needed); use env.obs=state")
                base = GymEnv(cfg.name, from_pixels=True, pixels_only=False, render_mode="rgb_array", **kwargs)
            images, _ = _image_and_vector_keys(base)
            transforms.append(ActionRepeat(cfg.action_repeat, max_pool_key=images[0] if (cfg.max_pool and images) else None))
            if cfg.sticky_actions:
                transforms.append(StickyActions(cfg.sticky_actions, seed=seed))
    env = TransformedEnv(base)
    for t in transforms:
        env.append_transform(t)

    images, vectors = _image_and_vector_keys(env)
    if want_pixels:
        if not images:
            raise ConfigError(f"env '{cfg.name}' has no image observation; use env.obs=state")
        if images[0] != "pixels":
            env.append_transform(RenameTransform([images[0]], ["pixels"]))
        env.append_transform(ImageTransform(cfg.image_size, cfg.grayscale))
    drop = [k for k in images if k != "pixels"] + ([] if want_pixels else (["pixels"] if "pixels" in images else []))
    if want_state:
        if not vectors:
            raise ConfigError(f"env '{cfg.name}' has no vector observation; use env.obs=pixels")
        env.append_transform(CatTensors(in_keys=vectors, out_key="state", del_keys=True, sort=False))
        state_dtype = env.observation_spec["state"].dtype
        if state_dtype != torch.float32:
            env.append_transform(DTypeCastTransform(state_dtype, torch.float32, in_keys=["state"]))
    else:
        drop += vectors
    drop = [k for k in drop if k in env.observation_spec.keys(True, True)]
    if drop:
        env.append_transform(ExcludeTransform(*drop))
    if cfg.time_limit:
        env.append_transform(StepCounter(max_steps=cfg.time_limit))
    env.set_seed(seed)
    return env


def _make_env_from_dict(env: dict, seed: int):
    from omegaconf import OmegaConf

    return make_env(OmegaConf.create(env), seed=seed)


def make_batched_env(cfg, workers: int, seed: int = 0):
    """``workers`` copies of ``make_env(cfg)`` stepped together: in worker processes (TorchRL
    ``ParallelEnv``, one torch thread each) when ``workers > 1``, in this process otherwise.
    Worker ``i`` is seeded with ``seed + i``."""
    import functools

    from omegaconf import OmegaConf
    from torchrl.envs import ParallelEnv, SerialEnv

    env = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type) \
        else OmegaConf.to_container(cfg, resolve=True)
    fn = functools.partial(_make_env_from_dict, cast(dict, env))
    kwargs = [{"seed": seed + i} for i in range(workers)]
    if workers > 1:
        return ParallelEnv(workers, fn, create_env_kwargs=kwargs, num_sub_threads=1, mp_start_method="spawn")
    return SerialEnv(1, fn, create_env_kwargs=kwargs)
