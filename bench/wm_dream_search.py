"""A fresh controller search in the dream of a World Models checkpoint, then a real evaluation (by hand).

    python bench/wm_dream_search.py runs/wm/checkpoints/last.ckpt --temperature 1.0 1.15 1.3 --episodes 10

Keeps the checkpoint's V and M and, for each temperature, runs CMA-ES from zero (the run's population,
rollouts, sigma0 and dream horizon unless given) for ``--generations`` generations inside M, the way
the controller stage does (common random numbers across a generation, start frames of real episodes
encoded by V); then plays the search's mean controller in the real environment on the zoo's evaluation
seed with the deterministic policy. It tells how well a dream of given temperature transfers, on one
V and M, without training them again. The start frames come from resets of the environment on
seeds no run uses.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

from zoo import EVAL_SEED, evaluate  # noqa: E402  (the zoo's evaluation: its seed, deterministic policy)

START_SEED = 5_000_000  # the start frames' env seed: used by no training run and not by the evaluation


def start_frames(env_cfg, count: int):
    """``count`` first frames of real episodes (uint8, (count, C, H, W))."""
    import torch

    from lightning_dreamer.algos.base import build_env

    env = build_env(env_cfg, seed=START_SEED)
    frames = torch.stack([env.reset()["pixels"] for _ in range(count)])
    env.close()
    return frames


def search(agent, frames, temperature: float, generations: int, population: int, rollouts: int, sigma0: float,
           seed: int) -> tuple[list[float], float]:
    """CMA-ES in the dream from zero; returns the population's mean fitness per generation and the
    seconds it took. The search's mean is left in ``agent.controller_params``."""
    import numpy as np
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cma warns that matplotlib is missing
        import cma

    agent.config.rollouts = rollouts  # dream_fitness plays model.rollouts per candidate
    es = cma.CMAEvolutionStrategy(np.zeros(agent.controller.num_params), sigma0,
                                  {"popsize": population, "seed": seed, "verbose": -9})
    curve, started = [], time.perf_counter()
    with torch.no_grad():
        for generation in range(generations):
            candidates = es.ask()
            params = torch.tensor(np.stack(candidates), dtype=torch.float32)
            fitness = agent.dream_fitness(params, agent.generation_seed(seed, generation), temperature, pool=frames)
            es.tell(candidates, (-fitness.double()).tolist())
            curve.append(float(fitness.mean()))
    agent.controller_params.copy_(torch.as_tensor(es.result.xfavorite, dtype=torch.float32))
    return curve, time.perf_counter() - started


def main() -> int:
    from lightning_dreamer.checkpoint import agent_from_checkpoint, env_steps_of, read_checkpoint, run_config_of
    from lightning_dreamer.errors import UserError
    from lightning_dreamer.loading import config_from_dict

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--temperature", type=float, nargs="+", default=[1.0])
    parser.add_argument("--generations", type=int, default=None, help="default: the run's model.generations")
    parser.add_argument("--population", type=int, default=None, help="default: the run's model.population")
    parser.add_argument("--rollouts", type=int, default=None, help="default: the run's model.rollouts")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if min(args.temperature) <= 0 or args.episodes < 1 or any(v is not None and v < 1 for v in
                                                               (args.generations, args.rollouts)) \
            or (args.population is not None and args.population < 2):
        print("error: --temperature must be > 0, --generations, --rollouts and --episodes >= 1, --population >= 2",
              file=sys.stderr)
        return 2
    try:
        ckpt = read_checkpoint(args.checkpoint)
        config = run_config_of(ckpt)
        if config["algo"] != "world_models":
            raise UserError(f"{args.checkpoint} is a {config['algo']} checkpoint; this searches World Models' controller")
        agent = agent_from_checkpoint(ckpt)
        m = agent.config
        generations, population = args.generations or m.generations, args.population or m.population
        rollouts = args.rollouts or m.rollouts
        frames = start_frames(config_from_dict(config).env, 64)
        state = ckpt.get("world_models", {})
        print(f"{args.checkpoint}: {env_steps_of(ckpt):,} env steps, iteration {state.get('iteration')}, stage "
              f"{state.get('stage')}; CMA-ES {population} x {rollouts} rollouts of {agent.horizon} steps, "
              f"{generations} generations from zero; real: {args.episodes} episodes on seed {EVAL_SEED}\n")
        print("| temperature | dream fitness, first / last 10 generations | real return (mean ± std) | search (s) |")
        print("|---|---|---|---|", flush=True)
        for tau in args.temperature:
            curve, seconds = search(agent, frames, tau, generations, population, rollouts, m.sigma0, args.seed)
            real, std = evaluate(agent, config, args.episodes)
            first, last = curve[:10], curve[-10:]
            print(f"| {tau:g} | {sum(first) / len(first):.1f} / {sum(last) / len(last):.1f} | {real:.1f} ± {std:.1f} | "
                  f"{seconds:.0f} |", flush=True)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
