"""End to end through the real command line, on tiny sizes."""

import csv
import math
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from lightning_dreamer.__main__ import main

from conftest import ROOT

TINY = os.path.join(ROOT, "configs", "tiny_point.yaml")
TINY_PRESET = os.path.join(ROOT, "configs", "presets", "tiny.yaml")
TINY_V1 = os.path.join(ROOT, "configs", "tiny_point_v1.yaml")
TINY_PRESET_V1 = os.path.join(ROOT, "configs", "presets", "v1_tiny.yaml")
# (tiny config, tiny size preset, name of the value-learning loss) per algorithm
ALGOS = {"dreamer_v2": (TINY, TINY_PRESET, "loss/critic"), "dreamer_v1": (TINY_V1, TINY_PRESET_V1, "loss/value")}
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false", "run.threads=1"]
pytestmark = pytest.mark.slow  # every test here runs the real CLI end to end


def run_cli(*args, check=True, **kw):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "lightning_dreamer", *args], cwd=ROOT, env=env, capture_output=True, text=True, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def ckpt_state(path):
    return torch.load(path, map_location="cpu", weights_only=False)["lightning_dreamer"]


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_fit_resume_eval(tmp_path, capsys, algo):
    TINY, _, value_loss = ALGOS[algo]
    run = tmp_path / "run"
    assert main(["fit", "--config", TINY, f"run.dir={run}", "run.total_env_steps=160", "run.eval_every=80", *QUIET]) == 0
    out = capsys.readouterr().out
    last = run / "checkpoints" / "last.ckpt"
    assert f"checkpoint: {last}" in out
    assert "host memory: freed memory kept for reuse (auto: CPU training;" in out
    first = ckpt_state(last)
    assert first["policy_steps"] == 160 and first["updates"] > 90
    # metrics: every loss term by name, in a CSV others can read
    rows = list(csv.DictReader(open(run / "logs" / "csv" / "metrics.csv")))
    columns = set(rows[0])
    for name in ("loss/kl", "loss/image", "loss/state", "loss/reward", "loss/actor", value_loss, "progress/env_steps"):
        assert name in columns
    episodes = [(r["train/return"], r["progress/env_steps"]) for r in rows if r.get("train/return")]
    assert 0 < len(episodes) <= first["episodes"] and len(set(episodes)) == len(episodes)  # each episode once
    assert os.listdir(run / "logs" / "tensorboard")
    evals = list(csv.DictReader(open(run / "eval.csv")))
    steps = [int(r["env_steps"]) for r in evals]
    assert steps[-1] == 160 and len(set(steps)) == len(steps)  # periodic evals, the final one not repeated
    # Starting again into the same directory without --ckpt_path is refused (nothing is overwritten).
    assert main(["fit", "--config", TINY, f"run.dir={run}", *QUIET]) == 2
    assert "already holds a run" in capsys.readouterr().err
    # Resume: counters and replay continue.
    assert main(["fit", "--config", TINY, f"run.dir={run}", "run.total_env_steps=210", "--ckpt_path", "last", *QUIET]) == 0
    out = capsys.readouterr().out
    assert "resumed: 160 env steps" in out
    rows_after = list(csv.DictReader(open(run / "logs" / "csv" / "metrics.csv")))
    assert len(rows_after) > len(rows)  # the log continues, nothing lost:
    assert [{k: r.get(k, "") for k in columns} for r in rows_after[: len(rows)]] == rows
    second = ckpt_state(last)
    assert second["policy_steps"] == 210 and second["updates"] > first["updates"] + 40
    # Each fit segment says where it ran, in which precision, from which env step (a record's "trained on").
    from lightning_dreamer.hardware import auto_precision, machine
    here = {"machine": machine(), "precision": auto_precision("cpu")[0]}
    assert first["segments"] == [{**here, "from_env_steps": 0}]
    assert second["segments"] == [{**here, "from_env_steps": 0}, {**here, "from_env_steps": 160}]
    assert second["episodes"] >= first["episodes"]
    # Resume from a checkpoint alone: the config travels inside it.
    assert main(["fit", "--ckpt_path", str(last), "run.total_env_steps=230", *QUIET]) == 0
    assert ckpt_state(last)["policy_steps"] == 230
    # A finished run started again does nothing: no update, no new evaluation (the first time here it
    # adds the final evaluation at 230 that the runs with eval_every 0 skipped; the second, nothing).
    again = ["fit", "--config", TINY, f"run.dir={run}", "run.total_env_steps=230", "run.eval_every=80",
             "--ckpt_path", "last", *QUIET]
    assert main(again) == 0
    evals, updates = (run / "eval.csv").read_text(), ckpt_state(last)["updates"]
    assert evals.splitlines()[-1].startswith("230,")
    assert main(again) == 0
    assert (run / "eval.csv").read_text() == evals and ckpt_state(last)["updates"] == updates
    # Evaluate with a video.
    video = tmp_path / "episode.mp4"
    assert main(["eval", "--ckpt", str(last), "--episodes", "2", "--video", str(video)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"return over 2 episodes: -?[\d.]+ ± [\d.]+", out)
    assert video.stat().st_size > 1000


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_kill_9_then_resume(tmp_path, algo):
    TINY = ALGOS[algo][0]
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "lightning_dreamer", "fit", "--config", TINY, f"run.dir={run}",
                             "run.total_env_steps=100000", "run.checkpoint_every=10", *QUIET],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = run / "checkpoints" / "last.ckpt"
    try:
        deadline = time.time() + 120
        while not last.exists() and time.time() < deadline:
            time.sleep(0.5)
        assert last.exists(), "no checkpoint written"
        time.sleep(3)  # let it run on past the first checkpoint, then kill it hard
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    saved = ckpt_state(last)
    assert saved["policy_steps"] > 0
    target = saved["policy_steps"] + 30
    out = run_cli("fit", "--config", TINY, f"run.dir={run}", f"run.total_env_steps={target}", "--ckpt_path", "last", *QUIET).stdout
    assert f"resumed: {saved['policy_steps']} env steps, {saved['updates']} updates" in out
    replay = int(re.search(r"replay ([\d,]+) steps", out).group(1).replace(",", ""))
    assert replay >= saved["policy_steps"]  # the replay came back with the checkpoint
    final = ckpt_state(last)
    assert final["policy_steps"] == target and final["updates"] > saved["updates"]


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_bf16_mixed_and_videos_on_dmc_pixels(tmp_path, algo):
    TINY, TINY_PRESET, _ = ALGOS[algo]
    run = tmp_path / "run"
    out = run_cli("fit", "--config", TINY, "--config", TINY_PRESET, "env.suite=dmc", "env.name=cartpole_swingup", "env.obs=pixels",
                  "env.action_repeat=2", f"run.dir={run}", "run.total_env_steps=240", "run.video_every=100",
                  "--trainer.precision", "bf16-mixed", *QUIET).stdout
    assert "done: 240 env steps" in out
    videos = os.listdir(run / "videos")
    assert videos and all(v.startswith("openloop_") and v.endswith(".mp4") for v in videos)
    rows = list(csv.DictReader(open(run / "logs" / "csv" / "metrics.csv")))
    losses = [float(r["loss/image"]) for r in rows if r.get("loss/image")]
    assert losses and all(math.isfinite(l) for l in losses)  # finite (no nan, no inf), logged under bf16


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_discrete_actions_with_discount_head(tmp_path, algo):
    TINY = ALGOS[algo][0]
    run = tmp_path / "run"
    out = run_cli("fit", "--config", TINY, "env.name=lightning_dreamer/PointDiscrete-v0", "model.pred_discount=true",
                  "model.reward_transform=tanh", f"run.dir={run}", "run.total_env_steps=120", *QUIET).stdout
    assert "done: 120 env steps" in out
    rows = list(csv.DictReader(open(run / "logs" / "csv" / "metrics.csv")))
    assert any(r.get("loss/discount") for r in rows)


def test_wandb_offline_without_account(tmp_path):
    run = tmp_path / "run"
    env_extra = {"WANDB_MODE": "offline", "WANDB_API_KEY": ""}
    out = subprocess.run([sys.executable, "-m", "lightning_dreamer", "fit", "--config", TINY, f"run.dir={run}",
                          "run.total_env_steps=70", "run.loggers=[csv,wandb]", *QUIET], cwd=ROOT, capture_output=True,
                         text=True, stdin=subprocess.DEVNULL, timeout=300, env={**os.environ, **env_extra})
    assert out.returncode == 0, out.stderr[-2000:]
    assert any(name.startswith("offline-run") for name in os.listdir(run / "wandb"))


def test_ddp_two_processes_identical_weights(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "ddp_run.py"), str(tmp_path), TINY], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    assert r0["updates"] == r1["updates"] > 0
    for key, value in r0["state"].items():
        assert torch.equal(value, r1["state"][key]), f"rank weights differ at {key}"
    # Each rank collected its own steps; env_steps counts both.
    assert r0["policy_steps"] == r1["policy_steps"] == 100  # 64 prefill + 1 per update, per rank
    assert r0["env_steps"] == r1["env_steps"] == 200
    assert r0["replay"] >= 100 and r1["replay"] >= 100
    # ... and they differ: each rank has its own seed, environments and replay.
    assert sorted(os.listdir(tmp_path / "run" / "replay")) == ["live-rank0", "live-rank1", "saved-rank0", "saved-rank1"]
    assert r0["states"].shape == r1["states"].shape and not torch.equal(r0["states"], r1["states"])


def test_resume_without_replay_and_too_long_sequences_are_clear_errors(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["fit", "--config", TINY, f"run.dir={run}", "run.total_env_steps=70", *QUIET]) == 0
    import shutil

    shutil.rmtree(run / "replay" / "saved-rank0")
    assert main(["fit", "--config", TINY, f"run.dir={run}", "run.total_env_steps=90", "--ckpt_path", "last", *QUIET]) == 2
    err = capsys.readouterr().err
    assert "cannot resume: the checkpoint's replay buffer is missing" in err and "Traceback" not in err
    assert (run / "checkpoints" / "last.ckpt").exists()  # nothing was lost
    # Point episodes end within 100 steps, so 500-step sequences can never be sampled.
    assert main(["fit", "--config", TINY, f"run.dir={tmp_path / 'long'}", "replay.seq_len=500", *QUIET]) == 2
    assert "no episode reached replay.seq_len=500" in capsys.readouterr().err
