"""A tiny gymnasium environment for fast tests and examples of bringing your own env.

A point on a line must reach and stay near a goal. Observations are a dict with an
``image`` (a 64x64 RGB drawing of point and goal) and a ``vector`` ([position, velocity,
goal]). Leaving the track ends the episode as *terminated* (a real terminal state, for
the discount head); otherwise the episode is *truncated* after ``max_steps``.

Registered as ``lightning_dreamer/Point-v0`` (continuous action in [-1, 1]) and
``lightning_dreamer/PointDiscrete-v0`` (3 actions: left, stay, right).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class PointEnv(gym.Env):
    """A point on a line that must reach a goal; image and vector observations (see the module docstring)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, discrete: bool = False, image_size: int = 64, render_mode: str | None = "rgb_array"):
        self.discrete = discrete
        self.image_size = image_size
        self.render_mode = render_mode
        self.action_space = spaces.Discrete(3) if discrete else spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.observation_space = spaces.Dict(
            image=spaces.Box(0, 255, (image_size, image_size, 3), np.uint8),
            vector=spaces.Box(-np.inf, np.inf, (3,), np.float32),
        )
        self._pos = self._vel = self._goal = 0.0

    def _obs(self):
        return {"image": self.render(), "vector": np.array([self._pos, self._vel, self._goal], np.float32)}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._pos = float(self.np_random.uniform(-0.3, 0.3))
        self._vel = 0.0
        self._goal = float(self.np_random.choice([-0.6, 0.6]))
        return self._obs(), {}

    def step(self, action):
        force = float(action) - 1.0 if self.discrete else float(np.clip(np.asarray(action).reshape(-1)[0], -1, 1))
        self._vel = 0.7 * self._vel + 0.05 * force
        self._pos += self._vel
        terminated = abs(self._pos) > 1.0
        reward = 0.0 if terminated else float(abs(self._pos - self._goal) < 0.2)
        return self._obs(), reward, terminated, False, {}

    def render(self):
        n = self.image_size
        img = np.zeros((n, n, 3), np.uint8)
        col = lambda x: int(np.clip((x + 1.0) / 2.0 * (n - 1), 0, n - 1))  # noqa: E731
        g = col(self._goal)
        img[: n // 2, max(g - 1, 0) : g + 2, 0] = 255
        p = col(self._pos)
        img[n // 2 :, max(p - 2, 0) : p + 3, :] = 255
        return img


def register() -> None:
    for env_id, discrete in (("lightning_dreamer/Point-v0", False), ("lightning_dreamer/PointDiscrete-v0", True)):
        if env_id not in gym.envs.registry:
            gym.register(env_id, entry_point="lightning_dreamer.envs.point:PointEnv", kwargs={"discrete": discrete},
                         max_episode_steps=100)
