"""Several environments per rank (env.num_envs): lanes of replay, batched collection, exact counts."""

import os

import pytest
import torch
from tensordict import TensorDict

from lightning_dreamer.data import BatchedCollector, Collector, Replay
from lightning_dreamer.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def point_cfg(**env):
    from lightning_dreamer.loading import load_config

    cfg = load_config([os.path.join(ROOT, "configs", "tiny_point.yaml")], [f"env.{k}={v}" for k, v in env.items()])
    return cfg.env


def lane_rows(replay, lane):
    data = replay.lanes[lane].buffer.storage[: len(replay.lanes[lane])]
    return {k: data[k] for k in ("state", "action", "reward", "is_first", "is_terminal", "episode")}


def test_each_lane_holds_what_one_env_alone_would_write():
    """N envs stepped together (seeds s..s+N-1, one batched policy call) write, in lane i, exactly
    the steps a single env of seed s+i writes with the same policy: resets included."""
    from torchrl.envs import SerialEnv

    from lightning_dreamer.envs import make_env

    cfg, n, steps = point_cfg(time_limit=7), 3, 30  # episodes of 7 steps: several resets per lane
    # A policy that depends on the observation only (the same per row whether batched or not).
    policy = lambda obs, first, state: (torch.tanh(obs["state"][:, :1] * 3 - 1), state)  # noqa: E731
    batched = Replay(1000, 2, 4, lanes=n)
    env = SerialEnv(n, lambda seed: make_env(cfg, seed=seed), create_env_kwargs=[{"seed": 5 + i} for i in range(n)])
    collector = BatchedCollector(env, batched, ("state",))
    assert collector.step(steps, policy) == steps * n
    env.close()
    finished = collector.pop_finished()
    for i in range(n):
        single = Replay(1000, 2, 4)
        one = Collector(make_env(cfg, seed=5 + i), single, ("state",))
        one.step(steps, policy)
        one.step(1)  # the single collector writes the next episode's first step lazily: take it too
        got, want = lane_rows(batched, i), lane_rows(single, 0)
        m = len(got["state"])
        for key in ("state", "action", "reward", "is_first", "is_terminal"):
            assert torch.equal(got[key], want[key][:m]), (i, key)
        assert m == steps + int(got["is_first"].sum())
        # episode ids: unique to each episode over all lanes, constant within it
        starts = torch.cumsum(got["is_first"].long(), 0)
        assert torch.equal(torch.unique_consecutive(got["episode"]).numel() * torch.ones(1), starts[-1:].float())
    ids = torch.cat([torch.unique(lane_rows(batched, i)["episode"]) for i in range(n)])
    assert ids.numel() == torch.unique(ids).numel()
    assert len(finished) == sum(int(lane_rows(batched, i)["is_first"].sum()) - 1 for i in range(n))
    assert all(length == 7 for _, length in finished)


def test_lanes_sample_whole_slices_and_save_and_load(tmp_path):
    replay = Replay(300, batch_size=8, seq_len=5, scratch_dir=str(tmp_path / "live"), lanes=3)
    for lane in range(3):
        for t in range(40 + 10 * lane):
            episode = 100 * lane + t // 20
            replay.add(TensorDict({"state": torch.tensor([float(lane), float(t)]), "is_first": torch.tensor(t % 20 == 0),
                                   "episode": torch.tensor(episode)}, batch_size=[]), lane=lane)
    assert len(replay) == 40 + 50 + 60 and replay.ready()
    for _ in range(5):
        batch = replay.sample()
        assert batch["state"].shape == (8, 5, 2)
        lanes, times = batch["state"][..., 0], batch["state"][..., 1]
        assert (lanes == lanes[:, :1]).all()  # a slice never mixes two envs
        assert (times.diff(dim=1) == 1).all()  # consecutive steps of the env
        assert (batch["episode"] == batch["episode"][:, :1]).all()
    replay.save(str(tmp_path / "saved"), generation=1)
    other = Replay(300, 8, 5, scratch_dir=str(tmp_path / "live2"), lanes=3)
    other.load(str(tmp_path / "saved"), generation=1)
    for lane in range(3):
        assert torch.equal(lane_rows_state(other, lane), lane_rows_state(replay, lane))
    with pytest.raises(UserError, match="holds 3 lane"):
        Replay(300, 8, 5, scratch_dir=str(tmp_path / "live3"), lanes=2).load(str(tmp_path / "saved"))
    with pytest.raises(ValueError, match="single-lane"):
        replay.sample(with_index=True)


def lane_rows_state(replay, lane):
    return replay.lanes[lane].buffer.storage[replay.lanes[lane].logical_indices()]["state"]


def test_train_ratio_counts_steps_of_all_envs():
    from lightning_dreamer.data import TrainRatio

    ratio = TrainRatio(train_ratio=32, batch_steps=32, pretrain=0, num_envs=3)  # 1 agent step per update
    owed = [ratio.owed() for _ in range(30)]
    assert sum(owed) == 10 and set(owed) == {0, 1}  # 10 steps of 3 envs = 30 agent steps for 30 updates


def test_fit_with_three_envs_counts_exactly(tmp_path):
    """A fit with env.num_envs=3 (worker processes) counts agent steps over all envs, keeps the
    train ratio, and every replayed step is an agent step or an episode start."""
    from lightning_dreamer.__main__ import main

    run = tmp_path / "run"
    args = ["fit", "--config", f"{ROOT}/configs/tiny_point.yaml", f"run.dir={run}", "run.total_env_steps=120",
            "run.eval_every=0", "env.num_envs=3", "run.threads=1", "--trainer.enable_progress_bar", "false"]
    assert main(args) == 0
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["lightning_dreamer"]
    prefill = 3 * 22  # replay.prefill=64 rounded up to whole steps of the 3 envs
    collected = state["policy_steps"] - prefill
    assert state["policy_steps"] % 3 == 0 and 120 <= state["policy_steps"] < 123
    # one update per agent step (train_ratio 32 = B*T), after replay.pretrain=2 updates that collect nothing
    assert collected == 3 * ((state["updates"] - 2) // 3)
    assert state["replay_steps"] == state["policy_steps"] + state["episodes"] + 3  # + each env's open episode's start


def test_num_envs_is_checked_before_any_work(tmp_path, capsys):
    from lightning_dreamer.__main__ import main

    for bad, words in ((["env.num_envs=0"], "env.num_envs"), (["env.num_envs=2", "replay.capacity=10"], "lanes"),
                       (["--config", f"{ROOT}/configs/tiny_point_wm.yaml", "env.num_envs=2"], "World Models")):
        config = [] if "--config" in bad else ["--config", f"{ROOT}/configs/tiny_point.yaml"]
        code = main(["fit", *config, *bad, f"run.dir={tmp_path / 'r'}"])
        err = capsys.readouterr().err
        assert code != 0 and words in err and "Traceback" not in err, (bad, err)
        assert not (tmp_path / "r").exists()


def test_resume_keeps_the_envs_and_their_lanes(tmp_path, capsys):
    from lightning_dreamer.__main__ import main

    run = tmp_path / "run"
    base = ["fit", "--config", f"{ROOT}/configs/tiny_point.yaml", f"run.dir={run}", "run.eval_every=0", "run.threads=1",
            "--trainer.enable_progress_bar", "false"]
    assert main([*base, "env.num_envs=2", "run.total_env_steps=90"]) == 0
    first = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["lightning_dreamer"]
    capsys.readouterr()
    assert main([*base, "env.num_envs=3", "run.total_env_steps=120", "--ckpt_path", "last"]) == 2
    err = capsys.readouterr().err
    assert "env.num_envs=3" in err and "resume with env.num_envs=2" in err and "Traceback" not in err
    assert main([*base, "env.num_envs=2", "run.total_env_steps=120", "--ckpt_path", "last"]) == 0
    assert "resumed: " in capsys.readouterr().out
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["lightning_dreamer"]
    assert 120 <= state["policy_steps"] < 122 and state["updates"] > first["updates"]
    # the two lanes came back whole and went on growing: every entry is an agent step or an episode start
    assert state["replay_steps"] == state["policy_steps"] + state["episodes"] + 2 * 2  # each segment opened 2 episodes
