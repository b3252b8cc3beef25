"""``EnvSpec``: what an agent needs to know of its environment, and nothing else.

An agent is built from an ``EnvSpec`` and its model config alone, so that loading a trained
agent needs neither the environment installed nor the run's config. The spec is saved among the
agent's hyperparameters as a plain dict (``to_dict`` / ``from_dict``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class EnvSpec:
    """Observation shapes and dtypes and the action space of an environment (after our transforms).

    ``obs_shapes`` maps ``pixels`` (uint8 ``(C, H, W)``) and/or ``state`` (float32 ``(D,)``) to
    shapes; ``action_dim`` is the size of the action vector (one-hot when ``discrete``); continuous
    actions lie in ``[action_low, action_high]`` per dimension (policies act in [-1, 1], rescaled by
    the collector).
    """

    obs_shapes: dict[str, tuple[int, ...]]
    action_dim: int
    discrete: bool
    obs_dtypes: dict[str, str] = field(default_factory=dict)
    action_low: tuple[float, ...] | None = None
    action_high: tuple[float, ...] | None = None

    @property
    def obs_keys(self) -> tuple[str, ...]:
        return tuple(self.obs_shapes)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["obs_shapes"] = {k: list(v) for k, v in self.obs_shapes.items()}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any] | EnvSpec) -> EnvSpec:
        if isinstance(data, EnvSpec):
            return data
        low, high = data.get("action_low"), data.get("action_high")
        return cls(obs_shapes={k: tuple(int(d) for d in v) for k, v in data["obs_shapes"].items()},
                   action_dim=int(data["action_dim"]), discrete=bool(data["discrete"]),
                   obs_dtypes=dict(data.get("obs_dtypes") or {}),
                   action_low=tuple(low) if low is not None else None, action_high=tuple(high) if high is not None else None)

    @classmethod
    def from_env(cls, env) -> EnvSpec:
        """The spec of a TorchRL env built by ``lightning_dreamer.envs.make_env``."""
        from torchrl.data import OneHot

        obs = env.observation_spec
        keys = [k for k in ("pixels", "state") if k in obs.keys()]
        action = env.action_spec
        discrete = isinstance(action, OneHot)
        low = None if discrete else tuple(float(x) for x in action.space.low.flatten())
        high = None if discrete else tuple(float(x) for x in action.space.high.flatten())
        return cls(obs_shapes={k: tuple(obs[k].shape) for k in keys}, action_dim=int(action.shape[-1]), discrete=discrete,
                   obs_dtypes={k: str(obs[k].dtype).replace("torch.", "") for k in keys}, action_low=low, action_high=high)
