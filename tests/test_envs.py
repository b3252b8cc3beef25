"""The TorchRL environment layer: transforms and every suite."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from lightning_dreamer.config import EnvConfig
from lightning_dreamer.envs import make_env
from lightning_dreamer.envs.transforms import resize_image


def env_cfg(**kw):
    return OmegaConf.structured(EnvConfig(**kw))


class CountingEnv(gym.Env):
    """reward = step index; frame value = 10 * step index, except odd steps are dark (flicker)."""

    observation_space = gym.spaces.Box(0, 255, (8, 8, 3), np.uint8)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, **kwargs):  # TorchRL may pass frameskip=1
        self.t = 0

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return self._frame(), {}

    def _frame(self):
        return np.full((8, 8, 3), 0 if self.t % 2 else 10 * self.t, np.uint8)

    def step(self, action):
        self.t += 1
        return self._frame(), float(self.t), self.t >= 7, False, {}


gym.register("lightning_dreamer_test/Counting-v0", entry_point=CountingEnv)


def test_resize_area_and_grayscale():
    frame = torch.zeros(4, 4, 3, dtype=torch.uint8)
    frame[:2, :2] = 200  # top-left quarter bright
    out = resize_image(frame, 2, grayscale=False)
    assert out.shape == (3, 2, 2) and out.dtype == torch.uint8
    assert out[:, 0, 0].tolist() == [200] * 3 and out[:, 1, 1].tolist() == [0] * 3
    rgb = torch.tensor([[[255, 0, 0]]], dtype=torch.uint8).expand(2, 2, 3)
    assert resize_image(rgb, 2, grayscale=True).flatten().tolist() == [76] * 4  # 0.299 * 255
    # Non-integer shrink (3 -> 2): each output pixel covers 1.5 input pixels.
    columns = torch.tensor([0, 90, 180], dtype=torch.uint8).view(1, 3, 1).expand(3, 3, 1)
    out = resize_image(columns, 2, grayscale=False)
    assert out.tolist() == [[[30, 150], [30, 150]]]  # (0 + 0.5 * 90) / 1.5, (0.5 * 90 + 180) / 1.5
    # A constant frame stays constant whatever the sizes.
    assert resize_image(torch.full((210, 160, 3), 77, dtype=torch.uint8), 64, False).unique().tolist() == [77]


def test_action_repeat_sums_rewards_max_pools_and_stops_at_episode_end():
    env = make_env(env_cfg(suite="gym", name="lightning_dreamer_test/Counting-v0", action_repeat=3, max_pool=True, image_size=8))
    td = env.reset()
    td["action"] = env.action_spec.zero()
    nxt = env.step(td)["next"]
    assert nxt["reward"].item() == 1 + 2 + 3
    # steps 2 (bright, 20) and 3 (dark) are pooled: the bright frame survives the flicker
    assert nxt["pixels"].max().item() == 20
    nxt["action"] = env.action_spec.zero()
    nxt = env.step(nxt)["next"]
    assert nxt["reward"].item() == 4 + 5 + 6
    nxt["action"] = env.action_spec.zero()
    last = env.step(nxt)["next"]
    assert last["reward"].item() == 7 and last["terminated"].item()  # stopped at the end, not 7 + 8 + 9


def test_time_limit_truncates():
    env = make_env(env_cfg(suite="gym", name="lightning_dreamer/Point-v0", obs="state", action_repeat=1, time_limit=3))
    td = env.reset()
    for _ in range(3):
        td["action"] = env.action_spec.zero()
        td = env.step(td)["next"]
    assert td["truncated"].item() and td["done"].item()


@pytest.mark.parametrize(
    "kw, keys",
    [
        (dict(suite="dmc", name="cartpole_swingup", obs="pixels"), {"pixels": ((3, 64, 64), torch.uint8)}),
        (dict(suite="dmc", name="cartpole_swingup", obs="state"), {"state": ((5,), torch.float32)}),
        (dict(suite="atari", name="Pong", grayscale=True, action_repeat=4, max_pool=True, sticky_actions=0.25),
         {"pixels": ((1, 64, 64), torch.uint8)}),
        (dict(suite="gym", name="lightning_dreamer/Point-v0", obs="both", action_repeat=1),
         {"pixels": ((3, 64, 64), torch.uint8), "state": ((3,), torch.float32)}),
        (dict(suite="gym", name="CarRacing-v3", obs="pixels"), {"pixels": ((3, 64, 64), torch.uint8)}),
    ],
    ids=["dmc-pixels", "dmc-state", "atari", "custom-dict", "carracing"],
)
def test_make_env_every_suite(kw, keys):
    env = make_env(env_cfg(**kw), seed=3)
    td = env.reset()
    td["action"] = env.action_spec.rand()
    nxt = env.step(td)["next"]
    for key, (shape, dtype) in keys.items():
        assert tuple(nxt[key].shape) == shape and nxt[key].dtype == dtype
    obs_keys = {k for k in nxt.keys() if k in ("pixels", "state")}
    assert obs_keys == set(keys)
    env.close()


def test_dmc_action_repeat_counts_physics_steps():
    env = make_env(env_cfg(suite="dmc", name="cartpole_swingup", obs="state", action_repeat=2))
    td = env.reset()
    steps = 0
    while True:
        td["action"] = env.action_spec.zero()
        td = env.step(td)["next"]
        steps += 1
        if td["done"].item():
            break
    assert steps == 500  # 1000 physics steps / action repeat 2
    assert td["truncated"].item() and not td["terminated"].item()


def test_ale_action_repeat_matches_frame_by_frame_play():
    import ale_py

    from lightning_dreamer.envs.atari import ALEActionRepeat

    gym.register_envs(ale_py)
    kwargs = dict(frameskip=1, repeat_action_probability=0.0, obs_type="grayscale")
    plain = gym.make("ALE/Pong-v5", **kwargs)
    wrapped = ALEActionRepeat(gym.make("ALE/Pong-v5", **kwargs), repeat=4, max_pool=True, grayscale=True)
    plain.reset(seed=5)
    first, _ = wrapped.reset(seed=5)
    assert first.shape == (210, 160, 1)
    for step in range(60):
        action = (step // 7) % plain.action_space.n
        frames, total = [], 0.0
        for _ in range(4):
            frame, reward, *_ = plain.step(action)
            frames.append(frame)
            total += reward
        obs, reward, terminated, truncated, _ = wrapped.step(action)
        assert reward == total and not terminated
        np.testing.assert_array_equal(obs[..., 0], np.maximum(frames[-1], frames[-2]))


def test_prefill_hold_repeats_random_actions_and_reaches_further():
    from lightning_dreamer.data.collector import Collector
    from lightning_dreamer.data.replay import Replay

    def prefill(hold, steps=1000):
        replay = Replay(5000, 2, 10)
        env = make_env(EnvConfig(suite="dmc", name="cartpole_swingup", obs="state", action_repeat=2), seed=0)
        Collector(env, replay, ("state",), torch.Generator().manual_seed(0), hold=hold).step(steps)
        data = replay.buffer.storage[: len(replay)]
        return data["action"][~data["is_first"]][:, 0], data["reward"]

    actions, _ = prefill(10, 100)
    changes = (actions[1:] != actions[:-1]).nonzero().flatten() + 1
    assert changes.tolist() == list(range(10, 100, 10))  # a new uniform action every 10 steps
    assert actions.min() >= -1 and actions.max() <= 1 and len(set(actions.tolist())) == 10
    iid, held = prefill(1, 2000)[1], prefill(10, 2000)[1]
    # Four episodes each. A step's reward (two frames) nears 2 only with the pole upright and slow:
    # held random actions swing the pole up more often and collect more reward (measured on seeds
    # 0-2: 2.6x, 1.7x and 4.3x the reward; 1.2-7.4% vs 0-2.8% of steps above 1).
    assert held.sum() > 1.5 * iid.sum()
    assert (held > 1).float().mean() > 2 * (iid > 1).float().mean()
    with pytest.raises(ValueError, match="prefill_hold"):
        Collector(make_env(EnvConfig(suite="dmc", name="cartpole_swingup", obs="state")), hold=0)


@pytest.mark.slow
def test_random_baseline_script():
    """bench/random_baseline.py: one table row per hold, the same returns on every run (the zoo's
    evaluation seed), and bad input refused on one line before any episode is played."""
    import subprocess
    import sys

    from conftest import ROOT

    script = [sys.executable, f"{ROOT}/bench/random_baseline.py", "--config", f"{ROOT}/configs/tiny_point.yaml"]
    runs = [subprocess.run(script + ["--hold", "1", "5", "--episodes", "3", "run.threads=1"], capture_output=True,
                           text=True, timeout=300) for _ in range(2)]
    assert runs[0].returncode == 0, runs[0].stderr
    rows = [line for line in runs[0].stdout.splitlines() if line.startswith("| 1 agent step |") or line.startswith("| 5 agent steps |")]
    assert len(rows) == 2 and "3 episodes on seed 7000000" in runs[0].stdout
    assert runs[1].stdout == runs[0].stdout
    bad = subprocess.run(script + ["--hold", "0"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stdout == "" and bad.stderr.count("\n") == 1 and "--hold" in bad.stderr
    bad = subprocess.run(script + ["env.name=NoSuchEnv-v0"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "NoSuchEnv-v0" in bad.stderr


def test_bad_prefill_hold_is_one_line(capsys, tmp_path):
    from lightning_dreamer.__main__ import main

    from conftest import ROOT

    assert main(["fit", "--config", f"{ROOT}/configs/tiny_point.yaml", f"run.dir={tmp_path}", "replay.prefill_hold=0"]) == 2
    err = capsys.readouterr().err
    assert "bad value for 'replay.prefill_hold': 0; allowed: >= 1" in err and err.count("\n") == 1
