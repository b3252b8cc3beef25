"""Reading our checkpoints: the run config stored beside the agent, and the agent itself.

A checkpoint holds the agent's hyperparameters (``spec`` and the model config's fields: what
``Algo(spec, **model)`` takes), its weights, and ``run_config`` (the full config of the run that
trained it: env, replay, run, model, trainer). Checkpoints written before the agent/run split kept
the full config as the only hyperparameter; they still load: the agent's spec is then read off
the environment they name.
"""

from __future__ import annotations

import os
from typing import Any

from lightning_dreamer.errors import UserError


def read_checkpoint(path: str) -> dict[str, Any]:
    """The checkpoint at ``path`` (on the CPU), or a UserError naming what is wrong with it."""
    import torch

    if not os.path.isfile(path):
        raise UserError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise UserError(f"cannot read checkpoint {path}: it is corrupt or not a lightning_dreamer checkpoint "
                        f"({type(err).__name__})") from None
    hparams = ckpt.get("hyper_parameters", {}) if isinstance(ckpt, dict) else {}
    if not ("run_config" in ckpt and "spec" in hparams) and "config" not in hparams:
        raise UserError(f"{path} is not a lightning_dreamer checkpoint (no run config inside)")
    return ckpt


def run_config_of(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The full config of the run that wrote ``ckpt`` (a plain dict)."""
    return ckpt["run_config"] if "run_config" in ckpt else ckpt["hyper_parameters"]["config"]


def env_steps_of(ckpt: dict[str, Any]) -> int:
    """Environment frames the run of ``ckpt`` had taken when it was written: agent steps x action
    repeat x ranks, as the module's ``env_steps`` counts them."""
    counters = ckpt.get("lightning_dreamer") or {}
    repeat = run_config_of(ckpt)["env"].get("action_repeat", 1)
    return int(counters.get("policy_steps", 0) * repeat * counters.get("world_size", 1))


def agent_from_checkpoint(ckpt: dict[str, Any]):
    """The agent of ``ckpt`` with its weights, in eval mode."""
    from lightning_dreamer.registry import get_algo

    config = run_config_of(ckpt)
    algo = get_algo(config["algo"])
    hparams = dict(ckpt["hyper_parameters"])
    if "spec" in hparams:
        agent = algo(**hparams)
    else:  # before the agent/run split: build the env once to learn its spec
        from lightning_dreamer.algos.base import spec_for
        from lightning_dreamer.loading import config_from_dict

        agent = algo(spec_for(config_from_dict(config).env), **config["model"])
    agent.load_state_dict(ckpt["state_dict"])
    return agent.eval()


def load_agent(source: str):
    """The agent ``source`` names, for every command that takes one: ``zoo:NAME`` (a published agent,
    its hash checked) or a checkpoint path. Returns (agent in eval mode on the CPU, the full run config
    it was trained with as a plain dict, a few words on how far it was trained)."""
    from lightning_dreamer import zoo

    if source.startswith(zoo.PREFIX):
        name = source[len(zoo.PREFIX):]
        config = zoo.run_config(name)
        steps = zoo.entry(name).get("env_steps")
        trained = f"zoo entry {name}" + (f", {steps:,} env steps" if isinstance(steps, int) else "")
        return zoo.load(name), config, trained
    ckpt = read_checkpoint(source)
    trained = f"{ckpt.get('lightning_dreamer', {}).get('updates', '?')} updates"
    return agent_from_checkpoint(ckpt), run_config_of(ckpt), trained
