"""A sweep of bad inputs through the command line.

For every input: a non-zero exit, exactly one line on stderr that names the bad key or file, no
traceback, and nothing of an existing run (checkpoint, replay, logs) changed. The whole table goes
through ``main`` (what ``python -m lightning_dreamer`` runs) with stderr captured at the file
descriptor, where an escaped exception is a failure; a spread of it also through separate processes.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import traceback
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from conftest import ROOT
from lightning_dreamer.__main__ import main
from lightning_dreamer.hardware import cpu_cores

TINY = os.path.join(ROOT, "configs", "tiny_point.yaml")
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false", "run.threads=1"]


def cli(*args, cwd=ROOT):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.path.join(ROOT, "tests") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "lightning_dreamer", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def snapshot(folder):
    """Every file under ``folder``: its content hash."""
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return out


@pytest.fixture(scope="module")
def existing_run(tmp_path_factory):
    """A finished tiny run (checkpoint, replay, logs) that no bad input may touch."""
    root = tmp_path_factory.mktemp("bad_inputs")
    run = root / "run"
    proc = cli("fit", "--config", TINY, f"run.dir={run}", "run.total_env_steps=80", *QUIET)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return root, run


def cases(root, run):
    last = str(run / "checkpoints" / "last.ckpt")
    fresh = f"run.dir={root / 'fresh'}"
    bad_yaml = root / "bad.yaml"
    bad_yaml.write_text("model: [unclosed\n")
    list_yaml = root / "list.yaml"
    list_yaml.write_text("- a\n- b\n")
    corrupt = root / "corrupt.ckpt"
    corrupt.write_bytes(b"\x00not a checkpoint")
    a_file = root / "a_file"
    a_file.write_text("x")
    fit = ["fit", "--config", TINY, fresh, *QUIET]
    table = [
        # (arguments, what the one line must name)
        (fit + ["replay.batch_size=0"], "replay.batch_size"),
        (fit + ["replay.seq_len=-1"], "replay.seq_len"),
        (fit + ["replay.capacity=0"], "replay.capacity"),
        (fit + ["replay.capacity=4"], "replay.capacity"),
        (fit + ["replay.train_ratio=0"], "replay.train_ratio"),
        (fit + ["replay.prefill=-5"], "replay.prefill"),
        (fit + ["replay.prefill_hold=0"], "replay.prefill_hold"),
        (fit + ["replay.pretrain=-1"], "replay.pretrain"),
        (fit + ["replay.batchsize=3"], "replay.batchsize"),
        (fit + ["replay.batch_size=abc"], "replay.batch_size"),
        (fit + ["model.deter=0"], "model.deter"),
        (fit + ["model.discount=1.5"], "model.discount"),
        (fit + ["model.act=gelu"], "model.act"),
        (fit + ["model.kl_balance=2"], "model.kl_balance"),
        (fit + ["model.loss_scales.kl=-1"], "model.loss_scales.kl"),
        (fit + ["model.reward_transform=log"], "model.reward_transform"),
        (fit + ["model.horizon=0"], "model.horizon"),
        (fit + ["model.model_lr=0"], "model.model_lr"),
        (fit + ["env.image_size=0"], "env.image_size"),
        (fit + ["env.image_size=32"], "env.image_size"),
        (fit + ["env.action_repeat=0"], "env.action_repeat"),
        (fit + ["env.sticky_actions=1.0"], "env.sticky_actions"),
        (fit + ["env.obs=rgb"], "env.obs"),
        (fit + ["env.suite=mujoco"], "env.suite"),
        (fit + ["env.name=Nope-v0"], "Nope-v0"),
        (fit + ["env.time_limit=-1"], "env.time_limit"),
        (fit + ["env.name=norender_env:NoRender-v0", "env.obs=pixels"], "NoRender-v0"),
        (fit + ["run.total_env_steps=0"], "run.total_env_steps"),
        (fit + ["run.checkpoint_every=-1"], "run.checkpoint_every"),
        (fit + ["run.log_every=0"], "run.log_every"),
        (fit + ["run.eval_episodes=0"], "run.eval_episodes"),
        (fit + ["run.threads=-2"], "run.threads"),
        (fit + ["run.compile=fast"], "run.compile"),
        (fit + ["replay.prefetch=-2"], "replay.prefetch"),
        (fit + ["run.seed=-1"], "run.seed"),
        (fit + ["run.loggers=[csv,mlflow]"], "mlflow"),
        (fit + ["run.dir=${nope}"], "run.dir"),
        (fit + ["algo=dreamer_v9"], "dreamer_v9"),
        (fit + ["--trainer.precision", "17"], "trainer.precision"),
        (fit + ["--trainer.devices", str(cpu_cores() + 1)], "trainer.devices"),
        (fit + ["--trainer.devices", "0"], "trainer.devices"),
        (fit + ["--trainer.devicess", "2"], "trainer.devicess"),
        (fit + ["--trainer.accelerator", "tpu"], "trainer.accelerator"),
        (fit + ["--trainer.max_time", "abc"], "max_time"),
        (fit + ["--trainer.devices"], "--trainer.devices"),
        (fit + ["stray"], "stray"),
        (["fit", "--config", "nope.yaml"], "nope.yaml"),
        (["fit", "--config", str(bad_yaml)], "bad.yaml"),
        (["fit", "--config", str(list_yaml)], "list.yaml"),
        (["fit", "--config", str(root)], str(root)),
        (["fit", "--config", TINY, f"run.dir={a_file}", *QUIET], "run.dir"),
        (["fit", "--config", TINY, f"run.dir={run}", *QUIET], "already holds a run"),
        (["fit", "--ckpt_path", str(corrupt)], "corrupt.ckpt"),
        (["fit", "--ckpt_path", last, "model.deter=64", *QUIET], "model"),
        (["fit", "--ckpt_path", last, "--trainer.precision", "17", *QUIET], "trainer.precision"),
        (["fit", "--config", TINY, f"run.dir={run}", "--ckpt_path", "last", "env.name=lightning_dreamer/PointDiscrete-v0",
          *QUIET], "env.name"),
        (["fit", "--config", TINY, f"run.dir={root / 'none'}", "--ckpt_path", "last", *QUIET], "no checkpoint"),
        (["eval", "--ckpt", last, "--video", str(root / "out.txt")], "--video"),
        (["eval", "--ckpt", str(root / "missing.ckpt")], "missing.ckpt"),
        (["eval", "--ckpt", last, "--episodes", "0"], "--episodes"),
        (["eval", "--ckpt", last, "--episodes", "abc"], "--episodes"),
        (["compare", f"x={root / 'nothing'}"], "nothing"),
        (["compare", f"x={run}", "--svg", str(root / "out.png")], "--svg"),
        (["fitt"], "fitt"),
    ]
    if not torch.cuda.is_available():
        table.append((fit + ["--trainer.accelerator", "gpu"], "trainer.accelerator"))
    return table


def judge(args, names, code, stderr):
    """None if the input failed as it should, else what went wrong."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    if code == 0 or len(lines) != 1 or "Traceback" in stderr or names not in lines[0] or not lines[0].startswith("error: "):
        return f"{' '.join(args[-3:])}: exit {code}, stderr {stderr.strip()[-400:]!r}"
    return None


@pytest.mark.slow
def test_bad_inputs_fail_on_one_line_and_change_nothing(existing_run, capfd, monkeypatch):
    root, run = existing_run
    table = cases(root, run)
    assert len(table) >= 40
    monkeypatch.chdir(ROOT)
    before = snapshot(run)
    problems = []
    for args, names in table:
        capfd.readouterr()
        try:
            code = main(list(args))
        except BaseException:  # noqa: BLE001 - an escaped exception is exactly what must not happen
            code, stderr = 1, "Traceback (in-process)\n" + traceback.format_exc()
        else:
            stderr = capfd.readouterr().err
        problems.append(judge(args, names, code, stderr))
    assert not [p for p in problems if p], "\n".join(p for p in problems if p)
    # A spread of the table again, each in its own process as a user would run it.
    sample = table[::6]
    with ThreadPoolExecutor(max_workers=max(1, min(2, cpu_cores()))) as pool:
        results = list(pool.map(lambda case: cli(*case[0]), sample))
    problems = [judge(args, names, proc.returncode, proc.stderr) for (args, names), proc in zip(sample, results)]
    assert not [p for p in problems if p], "\n".join(p for p in problems if p)
    assert snapshot(run) == before  # the existing run's checkpoint, replay and logs are as they were
    assert not os.path.exists(root / "fresh" / "checkpoints")  # and no bad input started a run


@pytest.mark.slow
def test_damaged_replay_on_resume_is_one_line(existing_run, tmp_path):
    _, run = existing_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    saved = copy / "replay" / "saved-rank0"
    (generation,) = os.listdir(saved)
    chunk = saved / generation / "chunk000000.pt"
    chunk.write_bytes(chunk.read_bytes()[:100])
    before = snapshot(copy)
    proc = cli("fit", "--config", TINY, f"run.dir={copy}", "run.total_env_steps=100", "--ckpt_path", "last", *QUIET)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "damaged (chunk000000.pt" in lines[0], proc.stderr[-2000:]
    assert snapshot(copy) == before
