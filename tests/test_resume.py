"""Exact resume: kills inside each write, stop signals, SLURM requeue, and side jobs that fail.

After every kill or stop the run resumes with a replay that holds exactly the steps its checkpoint
counted, and at the end the replay's agent steps equal the counted ones.
"""

import csv
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import ROOT
from lightning_dreamer.__main__ import main

TINY = os.path.join(ROOT, "configs", "tiny_point.yaml")
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false", "run.threads=1"]
CRASH_POINTS = ("replay_chunk", "replay_done", "checkpoint_tmp", "checkpoint_done")


def env_with(**extra):
    return {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **extra}


def fit_cli(*args, env=None, **kw):
    return subprocess.run([sys.executable, "-m", "lightning_dreamer", "fit", *args], cwd=ROOT, env=env or env_with(),
                          capture_output=True, text=True, timeout=300, **kw)


def saved_state(run):
    """(counters of last.ckpt, agent steps and size of the replay copy it names)."""
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["lightning_dreamer"]
    folder = run / "replay" / "saved-rank0" / f"g{ckpt['generation']:08d}"
    chunks = [torch.load(folder / name, weights_only=True) for name in sorted(os.listdir(folder)) if name.startswith("chunk")]
    is_first = torch.cat([c["is_first"] for c in chunks])
    return ckpt, int((~is_first).sum()), len(is_first)


def other_filesystem_tmpdir(tmp_path):
    """A TMPDIR on another filesystem than the run (tmpfs) where there is one."""
    if os.path.isdir("/dev/shm") and os.stat("/dev/shm").st_dev != os.stat(tmp_path).st_dev:
        folder = f"/dev/shm/ld-test-{os.getpid()}"
        os.makedirs(folder, exist_ok=True)
        return folder
    return str(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("point", CRASH_POINTS)
def test_kill_inside_each_write_then_exact_resume(tmp_path, point):
    run = tmp_path / "run"
    tmpdir = other_filesystem_tmpdir(tmp_path)
    # The second checkpoint save is killed at this point (the first one completes).
    proc = fit_cli("--config", TINY, f"run.dir={run}", "run.total_env_steps=400", "run.checkpoint_every=15", *QUIET,
                   env=env_with(LIGHTNING_DREAMER_CRASH_AT=f"{point}:2", TMPDIR=tmpdir))
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    ckpt, agent_steps, size = saved_state(run)
    assert ckpt["updates"] in (15, 30)  # the first save, or the second if the kill came after its rename
    assert agent_steps == ckpt["policy_steps"] and size == ckpt["replay_steps"]
    # Resume with the progress bar on: its messages must still show.
    target = ckpt["policy_steps"] + 20
    resumed = fit_cli("--config", TINY, f"run.dir={run}", f"run.total_env_steps={target}", "--ckpt_path", "last",
                      "run.threads=1", env=env_with(TMPDIR=tmpdir))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resumed: {ckpt['policy_steps']} env steps, {ckpt['updates']} updates, replay {size} steps" in resumed.stdout
    assert "replay: capacity" in resumed.stdout
    final, agent_steps, _ = saved_state(run)
    assert final["policy_steps"] == target == agent_steps  # nothing lost, nothing uncounted
    assert os.listdir(run / "replay" / "saved-rank0") == [f"g{final['generation']:08d}"]  # older copies removed
    assert not [f for f in os.listdir(run / "checkpoints") if ".tmp" in f]
    # The metrics continue from the checkpoint: no step or update count runs backwards.
    rows = list(csv.DictReader(open(run / "logs" / "csv" / "metrics.csv")))
    steps = [int(r["step"]) for r in rows]
    updates = [float(r["progress/updates"]) for r in rows if r.get("progress/updates")]
    assert steps == sorted(steps) and updates == sorted(updates)


def start_fit(run, *extra, env=None):
    return subprocess.Popen([sys.executable, "-m", "lightning_dreamer", "fit", "--config", TINY, f"run.dir={run}",
                             "run.total_env_steps=100000", "run.checkpoint_every=100000", *QUIET, *extra],
                            cwd=ROOT, env=env or env_with(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_training(run, proc, timeout=120):
    """Until the run has logged a few updates (it is past prefill, inside the training loop)."""
    metrics = run / "logs" / "csv" / "metrics.csv"
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and sum(1 for _ in open(metrics)) > 3:
            return
        time.sleep(0.3)
    raise AssertionError(f"the run did not start training (exit {proc.poll()})")


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_stop_signal_saves_and_exits_nonzero(tmp_path, sig, code):
    run = tmp_path / "run"
    proc = start_fit(run)
    wait_for_training(run, proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-2000:]
    name = signal.Signals(sig).name
    assert f"{name} received: saving a checkpoint" in err and "Traceback" not in err
    ckpt, agent_steps, size = saved_state(run)
    assert f"stopped by {name} at {ckpt['policy_steps']} env steps, {ckpt['updates']} updates" in out
    assert f"resume:     python -m lightning_dreamer fit --ckpt_path {run / 'checkpoints' / 'last.ckpt'}" in out
    assert agent_steps == ckpt["policy_steps"] and ckpt["updates"] > 0
    resumed = fit_cli("--ckpt_path", str(run / "checkpoints" / "last.ckpt"), f"run.total_env_steps={ckpt['policy_steps'] + 10}",
                      *QUIET)
    assert resumed.returncode == 0 and f"resumed: {ckpt['policy_steps']} env steps" in resumed.stdout


@pytest.mark.slow
def test_slurm_signal_requeues_and_the_requeued_job_resumes(tmp_path):
    run = tmp_path / "run"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "scontrol.calls"
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\n")
    scontrol.chmod(0o755)
    env = env_with(SLURM_JOB_ID="4242", PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    proc = start_fit(run, env=env)
    wait_for_training(run, proc)
    proc.send_signal(signal.SIGUSR1)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGUSR1, err[-2000:]
    assert calls.read_text().split() == ["requeue", "4242"] and "requeued SLURM job 4242" in out
    ckpt, agent_steps, _ = saved_state(run)
    assert agent_steps == ckpt["policy_steps"]
    # SLURM starts the same command again, with SLURM_RESTART_COUNT set: it resumes by itself.
    again = fit_cli("--config", TINY, f"run.dir={run}", f"run.total_env_steps={ckpt['policy_steps'] + 10}", *QUIET,
                    env={**env, "SLURM_RESTART_COUNT": "1"})
    assert again.returncode == 0, again.stderr[-2000:]
    assert "SLURM requeue (restart 1): resuming" in again.stdout and f"resumed: {ckpt['policy_steps']} env steps" in again.stdout


@pytest.mark.slow
def test_ckpt_path_auto_starts_then_resumes(tmp_path):
    run = tmp_path / "run"
    first = fit_cli("--config", TINY, f"run.dir={run}", "run.total_env_steps=70", "--ckpt_path", "auto", *QUIET)
    assert first.returncode == 0 and "resumed:" not in first.stdout
    second = fit_cli("--config", TINY, f"run.dir={run}", "run.total_env_steps=80", "--ckpt_path", "auto", *QUIET)
    assert second.returncode == 0 and "resumed: 70 env steps" in second.stdout


def test_failing_side_jobs_do_not_end_the_run(tmp_path, capsys, monkeypatch):
    import lightning_dreamer.callbacks as callbacks
    from lightning.pytorch.loggers import TensorBoardLogger

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(callbacks, "write_video", broken)  # the video writer
    monkeypatch.setattr(callbacks.EvalCallback, "_evaluate", broken)  # evaluation episodes
    monkeypatch.setattr(TensorBoardLogger, "log_metrics", broken)  # a logger
    run = tmp_path / "run"
    args = ["fit", "--config", TINY, f"run.dir={run}", "run.total_env_steps=100", "run.video_every=20", "run.eval_every=30",
            "env.obs=both", *QUIET]
    assert main(args) == 0
    captured = capsys.readouterr()
    out = captured.out + captured.err
    assert "done: 100 env steps" in out
    assert re.search(r"warning: the open-loop video failed at [\d,]+ env steps \(OSError: disk full\); training continues", out)
    assert re.search(r"warning: evaluation failed at [\d,]+ env steps \(OSError: disk full\); training continues", out)
    assert "warning: logging to TensorBoardLogger failed (OSError: disk full); training continues" in out
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["lightning_dreamer"]["policy_steps"] == 100


@pytest.mark.slow
def test_checkpoints_from_before_the_agent_run_split_still_load_and_resume(tmp_path):
    import shutil

    from lightning_dreamer.algos.dreamer_v2 import DreamerV2
    from lightning_dreamer.checkpoint import agent_from_checkpoint

    run = tmp_path / "run"
    assert fit_cli("--config", TINY, f"run.dir={run}", "run.total_env_steps=80", *QUIET).returncode == 0
    last = run / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=False)
    agent = DreamerV2.load_from_checkpoint(str(last), map_location="cpu")  # Lightning's own API: spec + model only
    assert agent.spec.obs_shapes == {"pixels": (3, 64, 64), "state": (3,)} and agent.run_cfg is None
    # The format before the split: the whole run config as the only hyperparameter, no run_config
    # entry, one flat replay copy and no generation.
    state = ckpt["lightning_dreamer"]
    ckpt["hyper_parameters"] = {"config": ckpt.pop("run_config")}
    saved = run / "replay" / "saved-rank0"
    (generation,) = os.listdir(saved)
    for name in os.listdir(saved / generation):
        shutil.move(str(saved / generation / name), str(saved / name))
    os.rmdir(saved / generation)
    for key in ("generation", "replay_steps", "log_step"):
        state.pop(key)
    torch.save(ckpt, last)
    old = agent_from_checkpoint(torch.load(last, weights_only=False))
    for key, value in agent.state_dict().items():
        assert torch.equal(value, old.state_dict()[key])
    evaluated = subprocess.run([sys.executable, "-m", "lightning_dreamer", "eval", "--ckpt", str(last), "--episodes", "1"],
                               cwd=ROOT, env=env_with(), capture_output=True, text=True, timeout=300)
    assert evaluated.returncode == 0 and "return over 1 episodes" in evaluated.stdout, evaluated.stderr[-2000:]
    resumed = fit_cli("--ckpt_path", str(last), "run.total_env_steps=100", *QUIET)
    assert resumed.returncode == 0 and "resumed: 80 env steps" in resumed.stdout, resumed.stderr[-2000:]
    new, agent_steps, _ = saved_state(run)
    assert new["policy_steps"] == 100 == agent_steps and "run_config" in torch.load(last, weights_only=False)
