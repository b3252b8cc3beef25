"""Sequence replay, its persistence, and the train-ratio pacing."""

import os

import pytest
import torch
from omegaconf import OmegaConf

from lightning_dreamer.config import EnvConfig
from lightning_dreamer.errors import UserError
from lightning_dreamer.data import Collector, Replay, TrainRatio
from lightning_dreamer.envs import make_env


def filled_replay(tmp_path, steps=600, seq_len=50):
    env = make_env(OmegaConf.structured(EnvConfig(suite="gym", name="lightning_dreamer/Point-v0", obs="state", action_repeat=1)), seed=1)
    replay = Replay(2000, batch_size=32, seq_len=seq_len, scratch_dir=str(tmp_path / "live"))
    collector = Collector(env, replay, ("state",), torch.Generator().manual_seed(0))
    collector.step(steps)
    return replay, collector


def test_sequences_never_cross_episodes_and_mark_starts(tmp_path):
    replay, collector = filled_replay(tmp_path)
    episodes = replay.buffer.storage[: len(replay)]["episode"]
    firsts = replay.buffer.storage[: len(replay)]["is_first"]
    lengths = torch.unique(episodes, return_counts=True)[1]
    assert len(lengths) > 5 and lengths.min() < 50 <= lengths.max()  # short and long episodes are both there
    # Each stored episode starts with exactly one is_first entry.
    for ep in torch.unique(episodes):
        mask = episodes == ep
        assert firsts[mask].sum() == 1 and firsts[mask][0]
    starts_seen = 0
    for _ in range(30):
        batch = replay.sample()
        assert batch["state"].shape == (32, 50, 3) and batch["action"].shape == (32, 50, 1)
        ep = batch["episode"]
        assert (ep == ep[:, :1]).all(), "a sequence mixes two episodes"
        assert not batch["is_first"][:, 1:].any(), "an episode start inside a sequence"
        starts_seen += int(batch["is_first"][:, 0].sum())
        # terminal entries only at the end of a sequence (a terminal step ends its episode)
        assert not batch["is_terminal"][:, :-1].any()
    assert starts_seen > 0


def test_replay_layout_action_and_reward_belong_to_arrival(tmp_path):
    replay, _ = filled_replay(tmp_path, steps=50)
    data = replay.buffer.storage[: len(replay)]
    assert (data["action"][data["is_first"]] == 0).all() and (data["reward"][data["is_first"]] == 0).all()


def test_save_load_roundtrip_and_crash_leftovers(tmp_path):
    replay, _ = filled_replay(tmp_path, steps=300)
    replay.extra = {"note": 7}
    path = str(tmp_path / "saved")
    os.makedirs(path + ".tmp")  # a killed save's leftovers: a partial temporary copy ...
    os.makedirs(path)  # ... and a stale copy of the same name that no checkpoint names
    replay.save(path, generation=3)
    assert sorted(os.listdir(tmp_path)) == ["live", "saved"]
    other = Replay(2000, 32, 10, scratch_dir=str(tmp_path / "live2"))
    other.load(path, generation=3)
    assert len(other) == len(replay) and other.next_episode == replay.next_episode and other.extra == {"note": 7}
    for key in ("state", "action", "reward", "episode", "is_first"):
        assert torch.equal(other.buffer.storage[: len(other)][key], replay.buffer.storage[: len(replay)][key])
    assert other.sample()["state"].shape == (32, 10, 3)
    # A copy of another generation than the checkpoint's is refused, so is a damaged one.
    with pytest.raises(UserError, match="generation 3, the checkpoint expects 4"):
        Replay(2000, 32, 10, scratch_dir=str(tmp_path / "live3")).load(path, generation=4)
    chunk = os.path.join(path, sorted(f for f in os.listdir(path) if f.startswith("chunk"))[0])
    with open(chunk, "r+b") as f:
        f.truncate(os.path.getsize(chunk) // 2)
    with pytest.raises(UserError, match="is damaged \\(chunk000000.pt"):
        Replay(2000, 32, 10, scratch_dir=str(tmp_path / "live4")).load(path, generation=3)
    with pytest.raises(FileNotFoundError):
        Replay(10, 1, 1).load(str(tmp_path / "nothing"))


def test_train_ratio_paces_collection():
    ratio = TrainRatio(train_ratio=32, batch_steps=80, pretrain=2)  # 2.5 agent steps per update
    owed = [ratio.owed() for _ in range(8)]
    assert owed[:2] == [0, 0]  # pretraining updates collect nothing
    assert owed[2:] == [2, 3, 2, 3, 2, 3]
    state = ratio.state_dict()
    again = TrainRatio(train_ratio=32, batch_steps=80)
    again.load_state_dict(state)
    assert again.owed() == ratio.owed()
    many = TrainRatio(train_ratio=400, batch_steps=100)  # 4 updates per agent step
    assert [many.owed() for _ in range(8)] == [0, 0, 0, 1, 0, 0, 0, 1]


def _entry(i, episode):
    from tensordict import TensorDict

    return TensorDict({"state": torch.full((2,), float(i)), "episode": torch.tensor(episode), "is_first": torch.tensor(False)}, batch_size=[])


def test_save_after_wraparound_keeps_oldest_first_and_costs_what_is_filled(tmp_path):
    replay = Replay(100, batch_size=2, seq_len=5, scratch_dir=str(tmp_path / "live"))
    for i in range(250):
        replay.add(_entry(i, i // 20))
    replay.save(str(tmp_path / "saved"), chunk=32)
    other = Replay(100, 2, 5, scratch_dir=str(tmp_path / "live2"))
    other.load(str(tmp_path / "saved"))
    values = other.buffer.storage[other._logical_indices()]["state"][:, 0]
    assert values.tolist() == list(map(float, range(150, 250)))  # the newest 100, oldest first
    other.add(_entry(250, 12))  # overwrites the oldest (150), as the original buffer would
    assert other.buffer.storage[other._logical_indices()]["state"][:, 0].tolist() == list(map(float, range(151, 251)))
    # A huge, nearly empty buffer saves only what it holds.
    big = Replay(1_000_000, 2, 5, scratch_dir=str(tmp_path / "big"))
    for i in range(50):
        big.add(_entry(i, 0))
    big.save(str(tmp_path / "big_saved"))
    size = sum(f.stat().st_size for f in (tmp_path / "big_saved").iterdir())
    assert size < 100_000
