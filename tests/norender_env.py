"""A vector-only gymnasium env without ``render``: asking it for pixels must fail on one line."""

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class NoRenderEnv(gym.Env):
    def __init__(self, **kwargs):
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.observation_space = spaces.Box(-1.0, 1.0, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 0.0, False, False, {}


gym.register("NoRender-v0", entry_point=NoRenderEnv, max_episode_steps=50)
