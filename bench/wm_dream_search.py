"""A fresh controller search in the dream of a World Models checkpoint, then a real evaluation (by hand).

    python bench/wm_dream_search.py runs/wm/checkpoints/last.ckpt --temperature 1.0 1.15 1.3 --episodes 10

Keeps the checkpoint's V and M and, for each temperature, runs CMA-ES from zero (the run's population,
rollouts, sigma0 and dream horizon unless given; ``--horizon`` sets the last) for ``--generations``
generations inside M, the way the controller stage does (common random numbers across a generation,
start frames of real episodes encoded by V); then plays the search's mean controller in the real
environment on the zoo's evaluation seed with the deterministic policy. It tells how well a dream of
given temperature transfers, on one V and M, without training them again. The start frames come
from resets of the environment on seeds no run uses.

    python bench/wm_dream_search.py CKPT --references --more-m-updates 3000 --replay runs/wm

CKPT may also be a zoo seed record, ``zoo/world_models/<benchmark>/seeds/seed<S>.json``: its agent comes from
the ``.safetensors`` beside it (which must have the record's SHA-256; git history keeps the weights of
unpublished seeds) and its run config from the record.

``--references`` first prints, for fixed controllers (the checkpoint's own C, no force, full force
either way), their dream fitness over all the search's start frames beside their real return:
does the dream rank controllers the way the real environment does? ``--more-m-updates N`` trains M
for N more updates on a run's saved replay (the checkpoint's M optimiser if it has one, the run's batch,
learning rate and clipping; ``--replay`` names the run folder, by default the checkpoint's own) before the
references and the searches.
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


def references(agent) -> list[tuple[str, object]]:
    """Fixed controllers to rank: the checkpoint's own C, no force (C = 0), full force either way (bias only)."""
    import torch

    own = agent.controller_params.clone()
    push = torch.zeros_like(own)
    push[-agent.action_dim:] = 5.0  # tanh(5) = 0.9999 on every action dimension
    return [("the checkpoint's C", own), ("no force (C = 0)", torch.zeros_like(own)), ("full force +1", push),
            ("full force -1", -push)]


def rank(agent, config: dict, controllers, frames, episodes: int, seed: int, temperature: float | None = None):
    """For each ``(name, params)`` of ``controllers``: ``(name, dream fitness over all of frames, real
    return mean, std)`` on the zoo's evaluation; the agent's controller is left at the last one."""
    import torch

    agent.config.rollouts = len(frames)  # every start frame once (a search draws `rollouts` of them)
    for name, params in controllers:
        with torch.no_grad():
            dream = float(agent.dream_fitness(params.unsqueeze(0), seed, temperature, pool=frames))
        agent.controller_params.copy_(params)
        real, std = evaluate(agent, config, episodes)
        yield name, dream, real, std


def train_m(agent, ckpt: dict, replay_cfg, run_dir: str, updates: int, seed: int) -> str:
    """``updates`` more updates of M on the run's saved replay, as its M stage makes them; one line to print."""
    import torch

    from lightning_dreamer.data.replay import Replay
    from lightning_dreamer.errors import UserError
    from lightning_dreamer.losses import total_loss

    saved = os.path.join(run_dir, "replay", "saved-rank0")
    if not os.path.isdir(saved) or not os.listdir(saved):
        raise UserError(f"no saved replay in {saved}; --more-m-updates trains M on a run's replay (--replay RUN_DIR)")
    r = replay_cfg
    replay = Replay(r.capacity, r.batch_size, r.seq_len)
    replay.load(os.path.join(saved, sorted(os.listdir(saved))[-1]))
    agent.replay = replay
    m = agent.config
    optimiser = torch.optim.Adam(agent.mdnrnn.parameters(), lr=m.mdn_lr)
    if len(ckpt.get("optimizer_states") or []) > 1:  # a run's checkpoint: go on with its M optimiser
        optimiser.load_state_dict(ckpt["optimizer_states"][1])
    torch.manual_seed(seed)
    agent.train()
    sums: dict[str, float] = {}
    started = time.perf_counter()
    for _ in range(updates):
        losses = agent.mdn_losses(agent.mdn_batch())
        optimiser.zero_grad(set_to_none=True)
        total_loss(losses, agent.mdn_scales).backward()
        if m.mdn_grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(agent.mdnrnn.parameters(), m.mdn_grad_clip)
        optimiser.step()
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach())
    agent.eval()
    mean = ", ".join(f"{k} {v / updates:.4f}" for k, v in sums.items())
    return (f"M trained {updates:,} more updates on {len(replay):,} replay steps ({r.batch_size} x {r.seq_len}, "
            f"{time.perf_counter() - started:.0f} s); mean losses {mean}")


def read_source(path: str) -> tuple[dict, object]:
    """A checkpoint, or a zoo seed record (``.json``) with its weights beside it: (a checkpoint-like dict with
    the run config and counters, the agent in eval mode)."""
    import json

    from lightning_dreamer import zoo
    from lightning_dreamer.checkpoint import agent_from_checkpoint, read_checkpoint
    from lightning_dreamer.errors import UserError

    if not path.endswith(".json"):
        ckpt = read_checkpoint(path)
        return ckpt, agent_from_checkpoint(ckpt)
    try:
        with open(path) as f:
            record = json.load(f)
        config, digest = record["config"], record["sha256"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(f"{path} is not a zoo seed record (json with config and sha256): {err}") from None
    weights = path[: -len(".json")] + ".safetensors"
    if not os.path.isfile(weights) or zoo.sha256(weights) != digest:
        raise UserError(f"{weights} is missing or lacks the record's SHA-256 {digest[:16]}...; restore it from git history "
                        f"(`git log -- {weights}`)")
    repeat = config["env"].get("action_repeat", 1)
    ckpt = {"run_config": config, "lightning_dreamer": {"policy_steps": record.get("env_steps", 0) // repeat}}
    return ckpt, zoo.agent_from_weights(weights, config["algo"])


def main() -> int:
    from lightning_dreamer.checkpoint import env_steps_of, run_config_of
    from lightning_dreamer.errors import UserError
    from lightning_dreamer.loading import config_from_dict

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--temperature", type=float, nargs="+", default=[1.0])
    parser.add_argument("--generations", type=int, default=None, help="default: the run's model.generations")
    parser.add_argument("--population", type=int, default=None, help="default: the run's model.population")
    parser.add_argument("--rollouts", type=int, default=None, help="default: the run's model.rollouts")
    parser.add_argument("--horizon", type=int, default=None, help="dream rollout length in agent steps "
                        "(default: the run's model.dream_horizon)")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--references", action="store_true", help="rank fixed controllers in the dream and for real")
    parser.add_argument("--more-m-updates", type=int, default=0, help="train M this much more on the run's replay first")
    parser.add_argument("--replay", help="the run folder whose replay/saved-rank0 M trains on (default: the checkpoint's)")
    args = parser.parse_args()
    if min(args.temperature) <= 0 or args.episodes < 1 or any(v is not None and v < 1 for v in
                                                               (args.generations, args.rollouts, args.horizon)) \
            or (args.population is not None and args.population < 2) or args.more_m_updates < 0:
        print("error: --temperature must be > 0, --generations, --rollouts, --horizon and --episodes >= 1, "
              "--population >= 2, --more-m-updates >= 0", file=sys.stderr)
        return 2
    try:
        ckpt, agent = read_source(args.checkpoint)
        config = run_config_of(ckpt)
        if config["algo"] != "world_models":
            raise UserError(f"{args.checkpoint} is a {config['algo']} checkpoint; this searches World Models' controller")
        m = agent.config
        generations, population = args.generations or m.generations, args.population or m.population
        rollouts = args.rollouts or m.rollouts
        agent.horizon = args.horizon or agent.horizon  # dream_fitness rolls out agent.horizon steps
        state = ckpt.get("world_models", {})
        print(f"{args.checkpoint}: {env_steps_of(ckpt):,} env steps, iteration {state.get('iteration')}, stage "
              f"{state.get('stage')}; CMA-ES {population} x {rollouts} rollouts of {agent.horizon} steps, "
              f"{generations} generations from zero; real: {args.episodes} episodes on seed {EVAL_SEED}\n")
        if args.more_m_updates:
            run_dir = args.replay or os.path.dirname(os.path.dirname(os.path.abspath(args.checkpoint)))
            line = train_m(agent, ckpt, config_from_dict(config).replay, run_dir, args.more_m_updates, args.seed)
            print(line + "\n", flush=True)
        frames = start_frames(config_from_dict(config).env, 64)
        if args.references:
            print(f"| controller | dream fitness over {len(frames)} start frames, temperature {args.temperature[0]:g} "
                  "| real return (mean ± std) |")
            print("|---|---|---|", flush=True)
            for name, dream, real, std in rank(agent, config, references(agent), frames, args.episodes,
                                               agent.generation_seed(args.seed, 0), args.temperature[0]):
                print(f"| {name} | {dream:.1f} | {real:.1f} ± {std:.1f} |", flush=True)
            print()
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
