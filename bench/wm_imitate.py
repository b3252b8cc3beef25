"""Can World Models' linear C do better on a checkpoint's V and M? Imitate a teacher and see (by hand).

    python bench/wm_imitate.py runs/wm/checkpoints/last.ckpt --teacher zoo:dreamer_v2/dmc_cartpole_swingup_state

DAgger (Ross, Gordon & Bagnell 2011) with World Models' controller as the student. The teacher is
any agent of the same environment, a zoo entry or a checkpoint, acting on what it observes (the
state vector, for a state entry). It plays the first round; in each later round the student plays
and the teacher labels every step. After each round C is refit on all labelled steps by ridge
regression of atanh(teacher's action) on [z, h, 1], where z is V's mean and h is M's LSTM state
driven by the actions played. At the end, the last student and the checkpoint's own C are both
evaluated in the real environment (the zoo's evaluation seed, deterministic policy) and in M's
dream (the same start frames and random numbers for both).

It tells apart two causes of a weak controller. If the imitating C plays much better than the C
found in the dream, a linear C on these features is expressive enough, and what holds the search
back is the dream: M does not score the better controller higher.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

from wm_dream_search import rank, start_frames  # noqa: E402
from zoo import EVAL_SEED  # noqa: E402  (the zoo's evaluation seed)

ROUND_SEED = 6_000_000  # the rounds' env seeds (ROUND_SEED + round): used by no run and not by the evaluation
DREAM_SEED = 8_000_000  # the dream comparison's random numbers
MAX_PRE_TANH = 3.0  # teacher actions at +-1 are fit as +-atanh(tanh(3)) = +-3 before the tanh


def load_teacher(spec: str):
    """A zoo entry (``zoo:NAME``) or a checkpoint path: (agent in eval mode, its run's env config)."""
    from lightning_dreamer.checkpoint import load_agent

    agent, config, _ = load_agent(spec)
    return agent, config["env"]


def play_round(student, teacher, env_cfg, seed: int, episodes: int, weights, data: list) -> list[float]:
    """Play ``episodes``; the teacher acts when ``weights`` is None, else the student C with
    pre-tanh ``weights`` ((in_dim + 1, action_dim)). Every step's ([z, h], teacher action) goes to ``data``."""
    import torch

    from lightning_dreamer.algos.base import build_env
    from lightning_dreamer.data.collector import run_episodes
    from lightning_dreamer.spec import EnvSpec

    env = build_env(env_cfg, seed=seed)
    torch.manual_seed(seed)  # the teacher's latents are sampled: the same seed replays the same round

    def policy(obs, is_first, state):
        lstm, teacher_state = state if state is not None else (student.mdnrnn.initial(1, student.device), None)
        target, teacher_state = teacher.act({k: obs[k].to(teacher.device) for k in teacher.obs_keys},
                                            is_first.to(teacher.device), teacher_state, explore=False)
        z, _ = student.vae.encode(obs["pixels"].to(student.device))
        feature = torch.cat([z, lstm[0]], -1)
        data.append((feature[0].cpu(), target[0].float().cpu()))
        if weights is None:
            action = target.to(student.device)
        else:
            action = torch.tanh(torch.cat([feature, torch.ones_like(feature[:, :1])], -1) @ weights.to(student.device))
        return action, (student.mdnrnn.step(z, action, lstm), teacher_state)

    with torch.no_grad():
        returns, _, _ = run_episodes(env, policy, episodes, EnvSpec.from_env(env).obs_keys)
    env.close()
    return returns


def fit(data: list, ridge: float):
    """Ridge regression of atanh(action) on [feature, 1]: pre-tanh weights and the fit's RMSE in action space."""
    import math

    import torch

    x = torch.stack([f for f, _ in data]).double()
    x = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)
    actions = torch.stack([a for _, a in data]).double()
    limit = math.tanh(MAX_PRE_TANH)
    y = torch.atanh(actions.clamp(-limit, limit))
    gram = x.T @ x + ridge * len(x) * torch.eye(x.shape[1], dtype=x.dtype)
    weights = torch.linalg.solve(gram, x.T @ y)
    rmse = float((torch.tanh(x @ weights) - actions).pow(2).mean().sqrt())
    return weights.float(), rmse


def as_controller_params(weights):
    """Pre-tanh weights ((in_dim + 1, action_dim)) in LinearController's flat layout: W row-major, then b."""
    import torch

    return torch.cat([weights[:-1].T.reshape(-1), weights[-1]])


def main() -> int:
    import numpy as np

    from lightning_dreamer.checkpoint import agent_from_checkpoint, env_steps_of, read_checkpoint, run_config_of
    from lightning_dreamer.errors import UserError
    from lightning_dreamer.loading import config_from_dict

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a World Models checkpoint (its V and M are kept)")
    parser.add_argument("--teacher", required=True, help="zoo:NAME or a checkpoint path: any agent of the same env")
    parser.add_argument("--rounds", type=int, default=8, help="student rounds after the teacher's")
    parser.add_argument("--episodes", type=int, default=3, help="episodes per round")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--ridge", type=float, default=1e-2, help="ridge penalty per labelled step")
    args = parser.parse_args()
    if args.rounds < 1 or args.episodes < 1 or args.eval_episodes < 1 or args.ridge <= 0:
        print("error: --rounds, --episodes and --eval-episodes must be >= 1, --ridge > 0", file=sys.stderr)
        return 2
    try:
        ckpt = read_checkpoint(args.checkpoint)
        config = run_config_of(ckpt)
        if config["algo"] != "world_models":
            raise UserError(f"{args.checkpoint} is a {config['algo']} checkpoint; the student is World Models' C")
        student = agent_from_checkpoint(ckpt)
        if student.discrete:
            raise UserError("the action space is discrete; this imitates continuous actions only")
        teacher, teacher_env = load_teacher(args.teacher)
        env_cfg = config_from_dict(config).env
        theirs = (teacher_env.get("suite"), teacher_env.get("name"), teacher_env.get("action_repeat", 1))
        ours = (env_cfg.suite, env_cfg.name, env_cfg.action_repeat)
        if theirs != ours:
            raise UserError("the teacher plays {}:{} at action repeat {}, the checkpoint {}:{} at {}; give a teacher "
                            "of the same environment and action repeat".format(*theirs, *ours))
        if teacher.action_dim != student.action_dim:
            raise UserError(f"the teacher has {teacher.action_dim} action dimensions, the checkpoint "
                            f"{student.action_dim}; give a teacher of the same environment")
        env_cfg.obs = "both"  # the student reads pixels, the teacher what it was trained on
        student.eval()
        print(f"{args.checkpoint}: {env_steps_of(ckpt):,} env steps; teacher {args.teacher}; "
              f"{args.rounds} rounds of {args.episodes} episodes\n")
        print("| round | who plays | labelled steps | fit RMSE | return (mean ± std) |")
        print("|---|---|---|---|---|", flush=True)
        data: list = []
        started = time.perf_counter()
        weights = None
        for k in range(args.rounds + 1):
            rmse = "" if weights is None else f"{fit_rmse:.3f}"
            returns = play_round(student, teacher, env_cfg, ROUND_SEED + k, args.episodes, weights, data)
            print(f"| {k} | {'teacher' if weights is None else 'student'} | {len(data):,} | {rmse} | "
                  f"{np.mean(returns):.1f} ± {np.std(returns):.1f} |", flush=True)
            weights, fit_rmse = fit(data, args.ridge)
        own = student.controller_params.clone()
        imitated = as_controller_params(weights)
        frames = start_frames(env_cfg, 64)
        print(f"\n| controller | real return, {args.eval_episodes} episodes on seed {EVAL_SEED} | dream fitness |")
        print("|---|---|---|")
        for name, dream, real, std in rank(student, config, (("the checkpoint's C", own), ("last student", imitated)),
                                           frames, args.eval_episodes, DREAM_SEED):
            print(f"| {name} | {real:.1f} ± {std:.1f} | {dream:.1f} |", flush=True)
        print(f"\n{time.perf_counter() - started:.0f} s")
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
