"""Small TorchRL transforms for pixel RL, with no torchvision dependency.

Order used by ``make_env``::

    base env -> ActionRepeat (sum rewards, optional max-pool of the last two frames)
             -> [RenderDMC]  (dm_control: render once per agent step, not once per frame)
             -> ImageTransform (HWC uint8 -> CHW uint8, resize, optional grayscale)
             -> StickyActions (optional, for gym envs without native sticky actions)
             -> StepCounter (time limit, from TorchRL)
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from tensordict import TensorDictBase
from torchrl.data import Bounded, Composite
from torchrl.envs.transforms import Transform


@functools.lru_cache(maxsize=16)
def _area_weights(size_in: int, size_out: int) -> torch.Tensor:
    """(size_out, size_in) matrix averaging the input pixels each output pixel covers, with
    fractional coverage at the edges (the INTER_AREA rule). Rows sum to one."""
    scale = size_in / size_out
    edges = torch.arange(size_out + 1, dtype=torch.float64) * scale
    pixels = torch.arange(size_in, dtype=torch.float64)
    overlap = (torch.minimum(edges[1:, None], pixels[None] + 1) - torch.maximum(edges[:-1, None], pixels[None])).clamp(min=0)
    return (overlap / scale).float()


def resize_image(frames: torch.Tensor, size: int, grayscale: bool) -> torch.Tensor:
    """Resize ``(..., H, W, C)`` uint8 frames to ``(..., C', size, size)`` uint8.

    Shrinking averages the covered pixels (area rule, two small matrix products); growing is
    bilinear. Grayscale uses the ITU-R 601 luma weights, like the ALE's own grayscale.
    """
    lead = frames.shape[:-3]
    x = frames.reshape(-1, *frames.shape[-3:]).float()
    if grayscale and x.shape[-1] == 3:
        x = x @ torch.tensor([[0.299], [0.587], [0.114]])
    x = x.permute(0, 3, 1, 2)
    height, width = x.shape[-2:]
    if (height, width) != (size, size):
        if height >= size and width >= size:
            x = _area_weights(height, size) @ x @ _area_weights(width, size).T
        else:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = x.round_().clamp_(0, 255).to(torch.uint8)
    return x.reshape(*lead, *x.shape[1:])


class ImageTransform(Transform):
    """Resize (and optionally grey) an HWC uint8 image key into a CHW uint8 image."""

    def __init__(self, size: int, grayscale: bool = False, key: str = "pixels"):
        super().__init__(in_keys=[key], out_keys=[key])
        self.size = size
        self.grayscale = grayscale

    def _apply_transform(self, obs: torch.Tensor) -> torch.Tensor:
        return resize_image(obs, self.size, self.grayscale)

    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase) -> TensorDictBase:
        return self._call(tensordict_reset)

    def transform_observation_spec(self, observation_spec: Composite) -> Composite:
        key = self.in_keys[0]
        old = observation_spec[key]
        channels = 1 if self.grayscale else old.shape[-1]
        shape = (*old.shape[:-3], channels, self.size, self.size)
        observation_spec[key] = Bounded(0, 255, shape=shape, dtype=torch.uint8, device=old.device)
        return observation_spec


class ActionRepeat(Transform):
    """Repeat each action ``repeat`` times in the parent env, summing rewards.

    Stops early when the episode ends. With ``max_pool_key`` the returned frame is the
    element-wise maximum of the last two raw frames (the Atari flicker fix of DQN).
    """

    def __init__(self, repeat: int, max_pool_key: str | None = None):
        super().__init__()
        if repeat < 1:
            raise ValueError(f"action_repeat must be >= 1, got {repeat}")
        self.repeat = repeat
        self.max_pool_key = max_pool_key

    def _step(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase) -> TensorDictBase:
        parent = self.parent
        reward_key = parent.reward_key
        reward = next_tensordict.get(reward_key)
        previous_frame = None
        for _ in range(self.repeat - 1):
            if next_tensordict.get("done").any():
                break
            if self.max_pool_key is not None:
                previous_frame = next_tensordict.get(self.max_pool_key)
            next_tensordict = parent._step(tensordict)
            reward = reward + next_tensordict.get(reward_key)
        if previous_frame is not None:
            frame = next_tensordict.get(self.max_pool_key)
            next_tensordict.set(self.max_pool_key, torch.maximum(frame, previous_frame))
        return next_tensordict.set(reward_key, reward)

    def forward(self, tensordict):  # pragma: no cover - only meaningful inside an env
        raise RuntimeError("ActionRepeat must be used inside a TransformedEnv")


class RenderDMC(Transform):
    """Add a ``pixels`` key rendered from a dm_control physics, once per agent step."""

    def __init__(self, size: int, camera_id: int = 0, key: str = "pixels"):
        super().__init__(in_keys=[], out_keys=[key])
        self.size = size
        self.camera_id = camera_id

    def _render(self) -> torch.Tensor:
        physics = self.parent.base_env._env.physics
        return torch.from_numpy(physics.render(height=self.size, width=self.size, camera_id=self.camera_id).copy())

    def _call(self, next_tensordict: TensorDictBase) -> TensorDictBase:
        return next_tensordict.set(self.out_keys[0], self._render())

    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase) -> TensorDictBase:
        return self._call(tensordict_reset)

    def transform_observation_spec(self, observation_spec: Composite) -> Composite:
        observation_spec[self.out_keys[0]] = Bounded(0, 255, shape=(self.size, self.size, 3), dtype=torch.uint8)
        return observation_spec


class StickyActions(Transform):
    """With probability ``prob`` the env receives the previous action instead of the new one
    (Machado et al. 2018). The ALE has this natively; this is for other gym environments."""

    def __init__(self, prob: float, seed: int = 0, action_key: str = "action"):
        super().__init__()
        if not 0.0 <= prob < 1.0:
            raise ValueError(f"sticky_actions must be in [0, 1), got {prob}")
        self.prob = prob
        self.action_key = action_key
        self.generator = torch.Generator().manual_seed(seed)
        self.previous = None

    def _inv_call(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = tensordict.get(self.action_key)
        if self.previous is not None and torch.rand((), generator=self.generator).item() < self.prob:
            action = self.previous
            tensordict.set(self.action_key, action)
        self.previous = action.clone()
        return tensordict

    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase) -> TensorDictBase:
        self.previous = None
        return tensordict_reset
