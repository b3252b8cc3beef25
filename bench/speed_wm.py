"""World Models speed benchmark: prints figures, asserts nothing.

1. One CMA-ES generation in the dream: P candidates x R rollouts x H steps through M in one
   batch (paper: 64 x 16, 1000 steps), with the share of time spent in M's batched forward
   (LSTM step + mixture heads) against everything else (controller, sampling, Python).
2. One generation in the real environment (dm_control cartpole swingup from pixels), the
   population's episodes dealt to env worker processes and batched through V, M and C.
3. One M update (the pixel cartpole config with presets/wm_cpu.yaml): z drawn from V's cached
   mean and variance (what training does) against encoding the batch's frames with V each time.

    python bench/speed_wm.py [--population 64] [--rollouts 16] [--horizon 1000] [--threads 1]
                             [--real-population 4] [--real-rollouts 1] [--workers 2] [--m-updates 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("MUJOCO_GL", "egl")
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def dream_generation(population: int, rollouts: int, horizon: int, device: str = "cpu") -> None:
    from lightning_dreamer.nets.controller import LinearController, dream_rollouts
    from lightning_dreamer.nets.mdnrnn import MDNRNN

    torch.manual_seed(0)
    mdnrnn = MDNRNN(z_dim=32, action_dim=1, hidden=256, mixtures=5).to(device)
    controller = LinearController(32 + 256, 1)  # parameters come with each call
    spent = {"m": 0.0}
    step, heads = mdnrnn.step, mdnrnn.heads

    def timed(fn):
        def wrapper(*args):
            start = time.perf_counter()
            out = fn(*args)
            spent["m"] += time.perf_counter() - start
            return out
        return wrapper

    mdnrnn.step, mdnrnn.heads = timed(step), timed(heads)
    params = (torch.randn(population, controller.num_params) * 0.1).to(device)
    z0 = torch.randn(population, rollouts, 32).to(device)
    seeds = torch.arange(population * rollouts).reshape(population, rollouts)
    dream_rollouts(mdnrnn, controller, params, z0, seeds, 20, use_done=False)  # warm-up
    spent["m"] = 0.0
    start = time.perf_counter()
    dream_rollouts(mdnrnn, controller, params, z0, seeds, horizon, use_done=False)
    if device == "cuda":
        torch.cuda.synchronize()
    total = time.perf_counter() - start
    print(f"| dream ({device}) | {population} x {rollouts} rollouts x {horizon} steps | {total:.2f} | "
          f"{100 * spent['m'] / total:.0f}% in M's batched forward (LSTM step + heads) |", flush=True)


def real_generation(population: int, rollouts: int, workers: int) -> None:
    from lightning_dreamer.loading import load_config
    from lightning_dreamer.train import build_agent

    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(["configs/wm_dmc_cartpole_swingup.yaml"],
                          [f"run.dir={tmp}", "model.dream=false", f"model.env_workers={workers}", f"model.rollouts={rollouts}",
                           f"model.population={population}", "replay.capacity=1000"])
        agent = build_agent(cfg)
        agent.setup("fit")
        try:
            params = torch.randn(population, agent.controller.num_params) * 0.1
            agent.real_fitness(params[:1])  # starts the worker processes
            before, start = agent.policy_steps, time.perf_counter()
            agent.real_fitness(params)
            total = time.perf_counter() - start
            steps = agent.policy_steps - before
            print(f"| real env (dmc cartpole swingup pixels, {workers} workers) | {population} x {rollouts} episodes, "
                  f"{steps:,} agent steps | {total:.2f} | {steps / total:.0f} agent steps/s |", flush=True)
        finally:
            agent.on_fit_end()


def m_updates(updates: int) -> None:
    from lightning_dreamer.loading import load_config
    from lightning_dreamer.train import build_agent

    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(["configs/wm_dmc_cartpole_swingup.yaml", "configs/presets/wm_cpu.yaml"],
                          [f"run.dir={tmp}", "replay.capacity=5000", "trainer.precision=32-true"])
        agent = build_agent(cfg)
        agent.setup("fit")
        agent.collector.step(2000, agent._policy)  # four 500-step episodes of pixels
        opt = torch.optim.Adam(agent.mdnrnn.parameters(), lr=1e-3)

        def update(cached: bool) -> None:
            loss = sum(agent.mdn_losses(agent.mdn_batch(cached)).values())
            opt.zero_grad()
            loss.backward()
            opt.step()

        start = time.perf_counter()
        agent.latent_table()
        table = time.perf_counter() - start
        for cached in (False, True):
            update(cached)  # warm-up
            start = time.perf_counter()
            for _ in range(updates):
                update(cached)
            per = (time.perf_counter() - start) / updates
            how = "z from cached latents" if cached else "frames encoded by V every update"
            print(f"| M update, {how} | batch {cfg.replay.batch_size} x {cfg.replay.seq_len} | {per:.3f} | |", flush=True)
        print(f"| encoding the latent table once | {len(agent.replay):,} frames | {table:.2f} | "
              f"{len(agent.replay) / table:.0f} frames/s |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--population", type=int, default=64)
    parser.add_argument("--rollouts", type=int, default=16)
    parser.add_argument("--horizon", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--real-population", type=int, default=4)
    parser.add_argument("--real-rollouts", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--m-updates", type=int, default=20)
    parser.add_argument("--skip-real", action="store_true")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where the dream generation runs")
    args = parser.parse_args()
    os.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| where | generation | seconds | |")
    print("|---|---|---|---|")
    dream_generation(args.population, args.rollouts, args.horizon, args.device)
    if not args.skip_real:
        real_generation(args.real_population, args.real_rollouts, args.workers)
    if args.m_updates:
        m_updates(args.m_updates)


if __name__ == "__main__":
    main()
