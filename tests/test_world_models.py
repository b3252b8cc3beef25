"""World Models through the real CLI on tiny sizes: every stage, kill -9 inside CMA-ES, resume, eval."""

import csv
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from lightning_dreamer.__main__ import main
from lightning_dreamer.loading import load_config
from lightning_dreamer.train import build_agent

from conftest import ROOT
from test_smoke import QUIET, run_cli

TINY_WM = os.path.join(ROOT, "configs", "tiny_point_wm.yaml")


def wm_state(path):
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    return ckpt["world_models"], ckpt["lightning_dreamer"]


@pytest.mark.slow
def test_all_stages_then_eval(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["fit", "--config", TINY_WM, f"run.dir={run}", *QUIET]) == 0
    out = capsys.readouterr().out
    for stage in ("iteration 0: stage vae", "iteration 0: stage mdn", "iteration 0: stage controller",
                  "iteration 1: stage collect", "iteration 1: stage vae", "iteration 1: stage controller"):
        assert stage in out
    wm, counters = wm_state(run / "checkpoints" / "last.ckpt")
    assert wm["iteration"] == 2 and wm["generation"] == 6  # 2 iterations x 3 generations
    assert wm["stage_best"] == float("-inf")  # reset on leaving the controller stage
    assert counters["policy_steps"] == 64 + 40  # random prefill + one collect stage with C
    rows = list(csv.DictReader(open(run / "logs" / "csv" / "metrics.csv")))
    for name in ("loss/vae_rec", "loss/vae_kl", "loss/mdn_nll", "loss/mdn_reward", "loss/mdn_done", "cma/fitness_mean", "cma/best"):
        assert any(r.get(name) for r in rows), name
    evals = list(csv.DictReader(open(run / "eval.csv")))
    assert len(evals) == 2  # after each controller stage
    video = tmp_path / "wm.mp4"
    assert main(["eval", "--ckpt", str(run / "checkpoints" / "last.ckpt"), "--episodes", "2", "--video", str(video)]) == 0
    assert re.search(r"return over 2 episodes", capsys.readouterr().out) and video.stat().st_size > 1000


@pytest.mark.slow
def test_dream_search_script_on_a_checkpoint(tmp_path):
    """bench/wm_dream_search.py: a fresh CMA-ES in the dream of a run's V and M (same seed, same
    search), its mean left in the controller, then a row per temperature with the real return."""
    from lightning_dreamer.checkpoint import agent_from_checkpoint, read_checkpoint

    run = tmp_path / "run"
    assert main(["fit", "--config", TINY_WM, f"run.dir={run}", "model.iterations=1", *QUIET]) == 0
    ckpt = str(run / "checkpoints" / "last.ckpt")
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    from wm_dream_search import search, start_frames

    agent = agent_from_checkpoint(read_checkpoint(ckpt))
    trained = agent.controller_params.clone()
    frames = start_frames(load_config([TINY_WM]).env, 4)
    assert frames.dtype == torch.uint8 and frames.shape[0] == 4
    curves = []
    for _ in range(2):
        curve, _ = search(agent, frames, 1.15, generations=3, population=6, rollouts=2, sigma0=0.1, seed=3)
        curves.append(curve)
        assert not torch.equal(agent.controller_params, trained)
    assert len(curves[0]) == 3 and curves[0] == curves[1]
    script = [sys.executable, os.path.join(ROOT, "bench", "wm_dream_search.py"), ckpt]
    out = subprocess.run(script + ["--temperature", "1", "1.3", "--generations", "2", "--episodes", "1"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if re.match(r"\| (1|1\.3) \| -?[\d.]+ / -?[\d.]+ \| -?[\d.]+ ± [\d.]+ \|", line)]
    assert len(rows) == 2, out.stdout
    bad = subprocess.run(script + ["--temperature", "0"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--temperature" in bad.stderr
    bad = subprocess.run(script + ["--horizon", "0"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--horizon" in bad.stderr
    # More M updates on the run's saved replay change M and nothing else; the references rank fixed
    # controllers (own C, no force, full force either way) in the dream and for real.
    from wm_dream_search import train_m

    from lightning_dreamer.errors import UserError

    ckpt_dict = read_checkpoint(ckpt)
    agent = agent_from_checkpoint(ckpt_dict)
    before_m = [p.clone() for p in agent.mdnrnn.parameters()]
    before_v = [p.clone() for p in agent.vae.parameters()]
    line = train_m(agent, ckpt_dict, load_config([TINY_WM]).replay, str(run), 3, 0)
    assert line.startswith("M trained 3 more updates on ") and "mdn_nll" in line
    assert any(not torch.equal(a, b) for a, b in zip(before_m, agent.mdnrnn.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(before_v, agent.vae.parameters()))
    with pytest.raises(UserError, match="no saved replay"):
        train_m(agent, ckpt_dict, load_config([TINY_WM]).replay, str(tmp_path / "elsewhere"), 3, 0)
    out = subprocess.run(script + ["--references", "--more-m-updates", "2", "--generations", "1", "--episodes", "1",
                                   "--horizon", "7"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "M trained 2 more updates" in out.stdout and "rollouts of 7 steps" in out.stdout
    names = ("the checkpoint's C", "no force (C = 0)", "full force +1", "full force -1")
    assert all(re.search(rf"\| {re.escape(n)} \| -?[\d.]+ \| -?[\d.]+ ± [\d.]+ \|", out.stdout) for n in names), out.stdout
    bad = subprocess.run(script + ["--more-m-updates", "2", "--replay", str(tmp_path / "elsewhere")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "no saved replay" in bad.stderr
    # A zoo seed record (bench/zoo.py's seeds/seed<S>.json) names the same agent, its weights beside it.
    import json

    from lightning_dreamer import zoo
    from lightning_dreamer.checkpoint import run_config_of

    record = tmp_path / "seeds" / "seed0.json"
    digest = zoo.save_weights(agent_from_checkpoint(ckpt_dict), str(record.with_suffix(".safetensors")))
    record.write_text(json.dumps({"seed": 0, "sha256": digest, "env_steps": 160, "config": run_config_of(ckpt_dict)}))
    script[2] = str(record)
    out = subprocess.run(script + ["--generations", "1", "--episodes", "1", "--horizon", "5"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "160 env steps" in out.stdout and re.search(r"\| 1 \| -?[\d.]+ / -?[\d.]+ \| -?[\d.]+ ± [\d.]+ \|", out.stdout), out.stdout
    with open(record.with_suffix(".safetensors"), "r+b") as f:  # one byte changed: refused, one line
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 1]))
    bad = subprocess.run(script, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "SHA-256" in bad.stderr


@pytest.mark.slow
def test_kill_9_inside_cma_es_then_resume(tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "lightning_dreamer", "fit", "--config", TINY_WM, f"run.dir={run}",
                             "model.generations=100000", "model.iterations=1", "run.checkpoint_every=2", *QUIET],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = run / "checkpoints" / "last.ckpt"
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            time.sleep(0.5)
            try:
                wm, _ = wm_state(last)
            except (FileNotFoundError, EOFError, RuntimeError):
                continue
            if wm["stage"] == "controller" and wm["generation"] >= 4:
                break
        else:
            raise AssertionError("no checkpoint inside the controller stage")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    saved, counters = wm_state(last)
    # The metrics written before the kill are on disk (not held back in a buffer).
    logged = [r for r in csv.DictReader(open(run / "logs" / "csv" / "metrics.csv")) if r.get("cma/generation")]
    assert logged and float(logged[-1]["cma/generation"]) >= saved["generation"]
    import pickle

    saved_es = pickle.loads(saved["es"])
    target = saved["generation"] + 3
    out = run_cli("fit", "--config", TINY_WM, f"run.dir={run}", f"model.generations={target}", "model.iterations=1",
                  "--ckpt_path", "last", *QUIET).stdout
    assert f"iteration 0: stage controller (step {saved['stage_step']} of {target})" in out
    final, _ = wm_state(last)
    es = pickle.loads(final["es"])
    assert final["generation"] == target and final["iteration"] == 1
    assert es.countiter == saved_es.countiter + 3  # the same search went on
    assert es.result.fbest <= saved_es.result.fbest  # its best score carried over
    # The stage's best score (logged as cma/best) carried over too.
    after = [r for r in csv.DictReader(open(run / "logs" / "csv" / "metrics.csv"))
             if r.get("cma/generation") and float(r["cma/generation"]) > saved["generation"]]
    assert saved["stage_best"] > float("-inf") and after
    assert all(float(r["cma/best"]) >= saved["stage_best"] for r in after)


@pytest.mark.parametrize("restart", [False, True])
def test_a_later_controller_stage_restarts_the_search_only_when_asked(restart):
    """model.restart_search: a later iteration's controller stage starts CMA-ES afresh (zero mean,
    sigma0, no generations) rather than going on with the last iteration's distribution."""
    import numpy as np

    agent = build_agent(load_config([TINY_WM], [f"model.restart_search={restart}"]))
    agent.print = lambda *args, **kwargs: None  # the stage line; no Trainer here
    first = agent.search
    for _ in range(3):  # the first controller stage: three generations move the search off zero
        candidates = first.ask()
        first.tell(candidates, [float(np.sum((np.asarray(x) - 1.0) ** 2)) for x in candidates])
    agent.iteration, agent.stage = 0, "mdn"
    agent._next_stage()
    assert agent.stage == "controller" and agent.search is first  # iteration 0 keeps the search attach_run made
    agent.iteration, agent.stage = 1, "mdn"
    agent._next_stage()
    assert agent.stage == "controller"
    if restart:
        assert agent.search is not first and agent.search.countiter == 0 and agent.search.sigma == agent.config.sigma0
        assert not np.any(agent.search.mean) and agent.search.opts["seed"] != first.opts["seed"]
    else:
        assert agent.search is first and agent.search.countiter == 3


def test_acting_mdn_losses_and_dream_video():
    cfg = load_config([TINY_WM], [])
    agent = build_agent(cfg)
    obs = {"pixels": torch.randint(0, 255, (3, 3, 64, 64), dtype=torch.uint8)}
    agent.controller_params.normal_()
    action, state = agent.act(obs, torch.ones(3, dtype=torch.bool), None)
    assert action.shape == (3, agent.action_dim) and (action.abs() <= 1).all() and state[0].shape == (3, 16)
    batch = {"pixels": torch.randint(0, 255, (2, 8, 3, 64, 64), dtype=torch.uint8), "action": torch.rand(2, 8, agent.action_dim),
             "reward": torch.rand(2, 8), "is_first": torch.zeros(2, 8, dtype=torch.bool), "is_terminal": torch.zeros(2, 8, dtype=torch.bool)}
    losses = agent.mdn_losses(batch)
    assert set(losses) == {"mdn_nll", "mdn_reward", "mdn_done"} and all(torch.isfinite(v) for v in losses.values())
    video = agent.openloop_video(batch, context=3, count=2)
    assert video.shape == (8, 64 * 3, 64 * 2, 3) and video.dtype == torch.uint8


def test_world_models_refuses_state_only_and_ddp(capsys):
    assert main(["fit", "--config", TINY_WM, "env.obs=state", "run.dir=/tmp/never"]) == 2
    assert "World Models needs pixel observations" in capsys.readouterr().err
    assert main(["fit", "--config", TINY_WM, "run.dir=/tmp/never", "--trainer.devices", "2"]) == 2
    assert "single process" in capsys.readouterr().err


@pytest.mark.slow
def test_real_env_fitness_in_worker_processes_keeps_candidates_apart(tmp_path):
    cfg = load_config([TINY_WM], [f"run.dir={tmp_path}", "model.dream=false", "model.env_workers=2", "model.rollouts=3"])
    agent = build_agent(cfg)
    agent.setup("fit")
    try:
        n = agent.controller.num_params
        still = torch.zeros(n)  # action tanh(0) = 0: the point never moves, never nears a goal, lasts 100 steps
        push = torch.zeros(n)
        push[-1] = 10.0  # bias: action ~ +1, the point leaves the track to the right within a few dozen steps
        fitness = agent.real_fitness(torch.stack([still, push, still]))
        assert fitness[0] == 0 and fitness[2] == 0
        steps = agent.policy_steps
        assert 2 * 3 * 100 < steps < 2 * 3 * 100 + 3 * 100  # six 100-step episodes plus three short ones
    finally:
        agent.on_fit_end()


def test_m_trains_on_cached_latents_of_the_sampled_frames(tmp_path):
    cfg = load_config([TINY_WM], [f"run.dir={tmp_path}"])
    agent = build_agent(cfg)
    agent.setup("fit")
    try:
        agent.collector.step(120, agent._policy)  # C at zero: 100-step episodes, so slices of 8 exist
        batch = agent.replay.sample(with_index=True)
        table = agent.latent_table()
        assert table.shape == (len(agent.replay), 2 * cfg.model.z_dim)
        mean, logvar = agent.vae.encode(batch["pixels"])
        cached = table[batch["index"]]
        torch.testing.assert_close(cached, torch.cat([mean, logvar], -1), atol=1e-5, rtol=1e-5)
        # The same noise gives the same losses from the cache as from the frames.
        torch.manual_seed(0)
        from_cache = agent.mdn_losses({**{k: v for k, v in batch.items() if k not in ("pixels", "index")}, "latent": cached})
        torch.manual_seed(0)
        from_frames = agent.mdn_losses(batch)
        for k in from_frames:
            torch.testing.assert_close(from_cache[k], from_frames[k], atol=1e-5, rtol=1e-5)
        # A later stage drops the cache: V and the replay may change before M trains again.
        agent.stage, agent.print = "mdn", print  # (no Trainer here to print through)
        agent._next_stage()
        assert agent.latents is None
        agent.collector.step(10, agent._policy)
        assert len(agent.latent_table()) == len(agent.replay)
    finally:
        agent.on_fit_end()


def test_the_loader_yields_what_each_stage_trains_on_and_a_stale_batch_is_replaced(tmp_path):
    cfg = load_config([TINY_WM], [f"run.dir={tmp_path}"])
    agent = build_agent(cfg)
    agent.setup("fit")
    try:
        agent.collector.step(120, agent._policy)
        batches = iter(agent.train_dataloader())
        agent.stage = "vae"
        frames = next(batches)
        assert frames["stage"] == "vae" and frames["pixels"].shape == (cfg.model.vae_batch, 3, 64, 64)
        agent.stage = "mdn"
        seq = next(batches)
        b, t = cfg.replay.batch_size, cfg.replay.seq_len
        assert seq["stage"] == "mdn" and "pixels" not in seq and seq["index"].shape == (b, t)
        with_latents = agent.with_latents(seq)
        torch.testing.assert_close(with_latents["latent"], agent.latent_table()[seq["index"]])
        assert {"latent", "action", "reward", "is_terminal"} <= set(with_latents)
        agent.stage = "controller"
        assert next(batches) == {"stage": "controller"}
        # training_step replaces a batch fetched for the stage that has just ended.
        agent.stage = "mdn"
        trained_on = []
        agent.optimizers = lambda: [None, None]
        agent.optimise = lambda opt, loss, clip: trained_on.append(float(loss))
        agent.mdn_losses = lambda batch: trained_on.append(sorted(batch)) or {k: torch.zeros(()) for k in agent.mdn_scales}
        agent.log_update = lambda logs: None
        agent.training_step(frames, 0)  # a V batch, while M trains
        assert trained_on[0] == sorted({"action", "reward", "is_first", "is_terminal", "episode", "latent"})
    finally:
        agent.on_fit_end()


def test_imitation_fit_recovers_a_linear_controller():
    """bench/wm_imitate.py: ridge regression of atanh(action) on [feature, 1] finds a C that is
    exactly linear-tanh, and its weights in LinearController's flat layout act the same."""
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    from wm_imitate import as_controller_params, fit

    from lightning_dreamer.nets.controller import LinearController

    g = torch.Generator().manual_seed(0)
    features = torch.randn(400, 6, generator=g)
    true_w, true_b = 0.3 * torch.randn(2, 6, generator=g), torch.tensor([0.2, -0.3])  # |pre-tanh| < 3
    actions = torch.tanh(features @ true_w.T + true_b)
    weights, rmse = fit(list(zip(features, actions)), ridge=1e-9)
    assert rmse < 1e-3
    params = as_controller_params(weights)
    controller = LinearController(6, 2)
    assert params.shape == (controller.num_params,)
    played = controller.act(params.unsqueeze(0), features.unsqueeze(0))[0]
    assert torch.allclose(played, actions, atol=1e-3)
    _, loose = fit(list(zip(features, actions)), ridge=10.0)  # a heavy penalty cannot fit it
    assert loose > 10 * rmse


@pytest.mark.slow
def test_imitate_script_on_a_checkpoint(tmp_path):
    """bench/wm_imitate.py end to end on tiny runs: a V2 teacher of the same env, one round each of
    teacher and student, then the checkpoint's C and the student in the real env and the dream;
    a teacher of another environment is refused on one line before any work."""
    wm_run, teacher_run = tmp_path / "wm", tmp_path / "teacher"
    assert main(["fit", "--config", TINY_WM, f"run.dir={wm_run}", "model.iterations=1", *QUIET]) == 0
    assert main(["fit", "--config", os.path.join(ROOT, "configs", "tiny_point.yaml"), f"run.dir={teacher_run}",
                 *QUIET]) == 0
    script = [sys.executable, os.path.join(ROOT, "bench", "wm_imitate.py"), str(wm_run / "checkpoints" / "last.ckpt")]
    out = subprocess.run(script + ["--teacher", str(teacher_run / "checkpoints" / "last.ckpt"), "--rounds", "1",
                                   "--episodes", "1", "--eval-episodes", "1"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert re.search(r"\| 0 \| teacher \| [\d,]+ \|  \| -?[\d.]+ ± [\d.]+ \|", out.stdout), out.stdout
    assert re.search(r"\| 1 \| student \| [\d,]+ \| [\d.]+ \| -?[\d.]+ ± [\d.]+ \|", out.stdout), out.stdout
    for who in ("the checkpoint's C", "last student"):
        assert re.search(rf"\| {who} \| -?[\d.]+ ± [\d.]+ \| -?[\d.]+ \|", out.stdout), out.stdout
    other = subprocess.run(script + ["--teacher", "zoo:dreamer_v2/dmc_cartpole_swingup_state"],
                           capture_output=True, text=True, timeout=120)
    assert other.returncode == 2 and other.stderr.count("\n") == 1 and "same environment" in other.stderr
    bad = subprocess.run(script + ["--teacher", "x", "--rounds", "0"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--rounds" in bad.stderr
