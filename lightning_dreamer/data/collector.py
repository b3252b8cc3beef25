"""Stepping an environment with a policy, writing replay entries, and pacing by train ratio."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import OneHot

# policy(obs, is_first, state) -> (action in [-1, 1] or one-hot, (1, A) float; new state)
Policy = Callable[[dict, torch.Tensor, object], tuple[torch.Tensor, object]]


class TrainRatio:
    """How many agent steps to collect before each gradient update.

    ``train_ratio`` replayed steps per agent step means one update (B*T replayed steps) per
    ``B*T / train_ratio`` agent steps. Fractions carry over, so e.g. 2.5 steps per update
    collects 2, 3, 2, 3, ... ``pretrain`` updates at the start collect nothing. With ``num_envs``
    environments stepped together, it counts steps of all of them at once (``num_envs`` agent steps).
    """

    def __init__(self, train_ratio: float, batch_steps: int, pretrain: int = 0, num_envs: int = 1):
        if train_ratio <= 0:
            raise ValueError(f"replay.train_ratio must be > 0, got {train_ratio}")
        self.steps_per_update = batch_steps / train_ratio / num_envs
        self.carry = -pretrain * self.steps_per_update

    def owed(self) -> int:
        """Steps (of every environment) to collect now, before the next update."""
        total = self.carry + self.steps_per_update
        steps = max(0, math.floor(total + 1e-9))
        self.carry = total - steps
        return steps

    def state_dict(self) -> dict:
        return {"carry": self.carry, "steps_per_update": self.steps_per_update}

    def load_state_dict(self, state: dict) -> None:
        self.carry = state["carry"]


class Collector:
    """Runs one (unbatched) TorchRL env, writes each step to a ``Replay`` in the layout of
    data/replay.py, and keeps episode statistics. Policies see actions in [-1, 1] (continuous,
    rescaled here to the env's bounds) or one-hot vectors (discrete)."""

    def __init__(self, env, replay=None, obs_keys=("pixels",), generator: torch.Generator | None = None, hold: int = 1):
        if hold < 1:
            raise ValueError(f"replay.prefill_hold must be >= 1, got {hold}")
        self.env, self.replay, self.obs_keys = env, replay, tuple(obs_keys)
        self.hold, self.held_for = hold, 0
        self.held: torch.Tensor | None = None
        spec = env.action_spec
        self.discrete = isinstance(spec, OneHot)
        self.action_dim = spec.shape[-1]
        if not self.discrete:
            self.low = spec.space.low.float()
            self.high = spec.space.high.float()
        self.action_dtype = spec.dtype
        self.generator = generator or torch.Generator().manual_seed(0)
        self.td: TensorDictBase | None = None  # the env's current step (None: reset before the next)
        self.agent_state: object = None
        self.is_first = True
        self.episode_return = 0.0
        self.episode_length = 0
        self.finished: list[tuple[float, int]] = []  # (return, length) since last pop
        self.steps = 0

    def random_action(self) -> torch.Tensor:
        """A uniform random action, drawn anew every ``hold`` calls."""
        if self.held is None or self.held_for >= self.hold:
            self.held, self.held_for = self._uniform_action(), 0
        self.held_for += 1
        return self.held

    def _uniform_action(self) -> torch.Tensor:
        if self.discrete:
            index = torch.randint(self.action_dim, (1,), generator=self.generator)
            return torch.nn.functional.one_hot(index, self.action_dim).float()
        return torch.rand(1, self.action_dim, generator=self.generator) * 2 - 1

    def to_env(self, action: torch.Tensor) -> torch.Tensor:
        """A policy's action (in [-1, 1], or one-hot) as the env takes it (its bounds and dtype)."""
        if self.discrete:
            return action.round().to(self.action_dtype)
        return (self.low + (action.clamp(-1, 1) + 1) / 2 * (self.high - self.low)).to(self.action_dtype)

    def _observation(self, td) -> dict[str, torch.Tensor]:
        return {k: td[k] for k in self.obs_keys}

    def _write(self, obs, action, reward, is_first, is_terminal):
        if self.replay is None:
            return
        if is_first:
            self.episode_id = self.replay.next_episode
            self.replay.next_episode += 1
        entry = TensorDict(
            {**obs, "action": action.reshape(self.action_dim).float(), "reward": torch.tensor(float(reward)),
             "is_first": torch.tensor(bool(is_first)), "is_terminal": torch.tensor(bool(is_terminal)),
             "episode": torch.tensor(self.episode_id, dtype=torch.int64)},
            batch_size=[],
        )
        self.replay.add(entry)

    def reset(self) -> TensorDictBase:
        td = self.env.reset()
        self.td = td
        self.is_first = True
        self.episode_return, self.episode_length = 0.0, 0
        self._write(self._observation(td), torch.zeros(self.action_dim), 0.0, True, False)
        return td

    def step(self, n: int, policy: Policy | None = None, frames: list | None = None) -> int:
        """Take ``n`` agent steps (random actions when ``policy`` is None). Returns n."""
        for _ in range(n):
            td = self.td if self.td is not None else self.reset()
            obs = self._observation(td)
            if frames is not None and "pixels" in td.keys():  # rendered even if the agent reads the state
                frames.append(td["pixels"].clone())
            if policy is None:
                action = self.random_action()
            else:
                batch_obs = {k: v.unsqueeze(0) for k, v in obs.items()}
                action, self.agent_state = policy(batch_obs, torch.tensor([self.is_first]), self.agent_state)
                action = action.detach().float().cpu()
            td["action"] = self.to_env(action[0])
            nxt = self.env.step(td)["next"]
            reward = float(nxt["reward"].sum())
            terminated = bool(nxt["terminated"].any())
            done = bool(nxt["done"].any())
            self.episode_return += reward
            self.episode_length += 1
            self.steps += 1
            self.is_first = False
            self._write(self._observation(nxt), action[0], reward, False, terminated)
            if done:
                if frames is not None and "pixels" in nxt.keys():
                    frames.append(nxt["pixels"].clone())
                self.finished.append((self.episode_return, self.episode_length))
                self.td = None
                self.agent_state = None
            else:
                self.td = nxt
        return n

    def pop_finished(self) -> list[tuple[float, int]]:
        finished, self.finished = self.finished, []
        return finished


class BatchedCollector:
    """``Collector`` for N environments stepped together (a TorchRL batched env of batch size
    ``[N]``: ``envs.make_batched_env``, worker processes when N > 1). One call of the policy acts
    in every environment (rows of one batch; ``is_first`` resets a row's state). Environment ``i``
    writes to lane ``i`` of the replay, so its steps stay in order; a finished episode's
    environment is reset at once (TorchRL ``step_and_maybe_reset``). ``step(n)`` takes ``n``
    steps in every environment: ``n * N`` agent steps."""

    def __init__(self, env, replay=None, obs_keys=("pixels",), generator: torch.Generator | None = None, hold: int = 1):
        if hold < 1:
            raise ValueError(f"replay.prefill_hold must be >= 1, got {hold}")
        self.env, self.replay, self.obs_keys, self.hold = env, replay, tuple(obs_keys), hold
        self.num_envs = int(env.batch_size[0])
        spec = env.action_spec
        self.discrete = isinstance(spec, OneHot)
        self.action_dim = spec.shape[-1]
        if not self.discrete:
            self.low = spec.space.low.float().reshape(-1, self.action_dim)[0]
            self.high = spec.space.high.float().reshape(-1, self.action_dim)[0]
        self.action_dtype = spec.dtype
        self.generator = generator or torch.Generator().manual_seed(0)
        self.held = torch.zeros(self.num_envs, self.action_dim)
        self.held_for = torch.full((self.num_envs,), hold)
        self.td: TensorDictBase | None = None  # the envs' current root step (None: reset before the next)
        self.agent_state: object = None
        self.is_first = torch.ones(self.num_envs, dtype=torch.bool)
        self.episode_return = torch.zeros(self.num_envs, dtype=torch.float64)
        self.episode_length = torch.zeros(self.num_envs, dtype=torch.int64)
        self.episode_id = [0] * self.num_envs
        self.finished: list[tuple[float, int]] = []
        self.steps = 0

    def random_action(self) -> torch.Tensor:
        """(N, A) uniform random actions, each drawn anew every ``hold`` steps of its env."""
        renew = self.held_for >= self.hold
        if renew.any():
            k = int(renew.sum())
            if self.discrete:
                index = torch.randint(self.action_dim, (k,), generator=self.generator)
                fresh = torch.nn.functional.one_hot(index, self.action_dim).float()
            else:
                fresh = torch.rand(k, self.action_dim, generator=self.generator) * 2 - 1
            self.held[renew] = fresh
            self.held_for[renew] = 0
        self.held_for += 1
        return self.held.clone()

    def to_env(self, action: torch.Tensor) -> torch.Tensor:
        if self.discrete:
            return action.round().to(self.action_dtype)
        return (self.low + (action.clamp(-1, 1) + 1) / 2 * (self.high - self.low)).to(self.action_dtype)

    def _write(self, i: int, td, action, reward: float, is_first: bool, is_terminal: bool) -> None:
        if self.replay is None:
            return
        if is_first:
            self.episode_id[i] = self.replay.next_episode
            self.replay.next_episode += 1
        entry = TensorDict(
            {**{k: td[k][i] for k in self.obs_keys}, "action": action.reshape(self.action_dim).float(),
             "reward": torch.tensor(float(reward)), "is_first": torch.tensor(bool(is_first)),
             "is_terminal": torch.tensor(bool(is_terminal)), "episode": torch.tensor(self.episode_id[i], dtype=torch.int64)},
            batch_size=[],
        )
        self.replay.add(entry, lane=i)

    def _start(self, td, rows) -> None:
        for i in rows:
            self._write(i, td, torch.zeros(self.action_dim), 0.0, True, False)
            self.is_first[i] = True
            self.episode_return[i], self.episode_length[i] = 0.0, 0

    def step(self, n: int, policy: Policy | None = None) -> int:
        """Take ``n`` steps in each environment (random actions when ``policy`` is None). Returns n * N."""
        for _ in range(n):
            if self.td is None:
                self.td = self.env.reset()
                self._start(self.td, range(self.num_envs))
                self.agent_state = None
            td = self.td
            if policy is None:
                action = self.random_action()
            else:
                obs = {k: td[k] for k in self.obs_keys}
                action, self.agent_state = policy(obs, self.is_first.clone(), self.agent_state)
                action = action.detach().float().cpu()
            td["action"] = self.to_env(action)
            out, root = self.env.step_and_maybe_reset(td)
            nxt = out["next"]
            reward = nxt["reward"].reshape(self.num_envs, -1).sum(-1).double()
            terminated = nxt["terminated"].reshape(self.num_envs, -1).any(-1)
            done = nxt["done"].reshape(self.num_envs, -1).any(-1)
            self.episode_return += reward
            self.episode_length += 1
            self.steps += self.num_envs
            self.is_first[:] = False
            for i in range(self.num_envs):
                self._write(i, nxt, action[i], float(reward[i]), False, bool(terminated[i]))
            ended = done.nonzero().flatten().tolist()
            for i in ended:
                self.finished.append((float(self.episode_return[i]), int(self.episode_length[i])))
            self._start(root, ended)  # those envs were reset: their next episode starts here
            self.td = root
        return n * self.num_envs

    def pop_finished(self) -> list[tuple[float, int]]:
        finished, self.finished = self.finished, []
        return finished


def run_episodes(env, policy: Policy | None, episodes: int, obs_keys, record_first: bool = False, max_steps: int = 10**7,
                 generator: torch.Generator | None = None, hold: int = 1):
    """Play whole episodes; returns (returns, lengths, frames of the first episode or None). With no
    ``policy``, random actions from ``generator``, each held ``hold`` agent steps."""
    collector = Collector(env, None, obs_keys, generator, hold)
    frames: list | None = [] if record_first else None
    results: list[tuple[float, int]] = []
    steps = 0
    while len(results) < episodes and steps < max_steps:
        collector.step(1, policy, frames if (record_first and not results) else None)
        steps += 1
        results += collector.pop_finished()
    return [r for r, _ in results], [n for _, n in results], frames
