"""Action repeat inside the ALE: one TorchRL step per agent step instead of one per frame.

``ALEActionRepeat`` plays ``repeat`` frames with ``ale.act`` (sticky actions stay per frame:
the ALE applies them inside ``act``), sums the rewards, reads the screen only for the last
two frames and returns their element-wise maximum (the DQN flicker fix). Grayscale comes
from the ALE's own palette, so no RGB frame is copied when ``grayscale`` is set.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class ALEActionRepeat(gym.Wrapper):
    """Action repeat inside the ALE (rewards summed), with the max over the last two screens (flicker)."""

    def __init__(self, env: gym.Env, repeat: int, max_pool: bool, grayscale: bool):
        super().__init__(env)
        if repeat < 1:
            raise ValueError(f"action_repeat must be >= 1, got {repeat}")
        ale_env: Any = env.unwrapped  # ale_py's AtariEnv: its emulator and the minimal action set
        self.ale = ale_env.ale
        self.action_set = ale_env._action_set
        self.repeat, self.max_pool, self.grayscale = repeat, max_pool, grayscale
        height, width = self.ale.getScreenDims()
        shape = (height, width) if grayscale else (height, width, 3)
        self.frames = [np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)]
        self.observation_space = gym.spaces.Box(0, 255, (height, width, 1 if grayscale else 3), np.uint8)

    def _grab(self, index: int) -> np.ndarray:
        frame = self.frames[index]
        (self.ale.getScreenGrayscale if self.grayscale else self.ale.getScreenRGB)(frame)
        return frame

    def _observation(self, frame: np.ndarray) -> np.ndarray:
        return frame[..., None].copy() if self.grayscale else frame.copy()

    def reset(self, **kwargs):
        _, info = self.env.reset(**kwargs)
        self.frames[0].fill(0)
        return self._observation(self._grab(1)), info

    def step(self, action):
        reward, terminated, truncated = 0.0, False, False
        ale_action = self.action_set[int(action)]
        for i in range(self.repeat):
            reward += self.ale.act(ale_action, 1.0)
            terminated = self.ale.game_over(with_truncation=False)
            truncated = self.ale.game_truncated()
            if terminated or truncated:
                return self._observation(self._grab(1)), reward, terminated, truncated, {"lives": self.ale.lives()}
            if self.max_pool and i == self.repeat - 2:
                self._grab(0)
        frame = self._grab(1)
        if self.max_pool and self.repeat > 1:
            frame = np.maximum(frame, self.frames[0])
        return self._observation(frame), reward, terminated, truncated, {"lives": self.ale.lives()}
