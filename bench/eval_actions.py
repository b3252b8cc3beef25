"""Evaluate Dreamer V1 checkpoints with each way of choosing the action (by hand, not in CI):

    python bench/eval_actions.py runs/zoo/dreamer_v1/dmc_cartpole_swingup/seed*/checkpoints/last.ckpt --episodes 10

``mode`` is DreamerV1's deterministic action (the most likely of 100 samples under the tanh-Normal),
``median`` is tanh(mean) (``model.eval_action=median``), ``sample`` is one draw of the policy without
the exploration noise. Once the actor's pre-tanh std exceeds about 1, ``mode`` plays saturated
+-1 actions, so a run whose evaluations sit at the push-the-cart-to-the-wall return (about 75 on
cartpole swingup) can be told apart from one whose policy is really stuck there. Episodes are played
on the zoo's evaluation seed.
"""

from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main() -> int:
    import numpy as np
    import torch

    from lightning_dreamer.algos.base import build_env
    from lightning_dreamer.checkpoint import agent_from_checkpoint, read_checkpoint, run_config_of
    from lightning_dreamer.loading import config_from_dict

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7_000_000, help="evaluation seed (the zoo's)")
    args = parser.parse_args()
    print("| checkpoint | env steps | mode | median | sample |\n|---|---|---|---|---|")
    for path in args.checkpoints:
        ckpt = read_checkpoint(path)
        agent, config = agent_from_checkpoint(ckpt), run_config_of(ckpt)
        if config["algo"] != "dreamer_v1" or agent.discrete:
            print(f"| {path} | not a continuous-action Dreamer V1 agent |")
            continue
        cells = []
        for how in ("mode", "median", "sample"):
            agent.config.eval_action = how if how != "sample" else "mode"
            if how == "sample":  # no exploration noise: the policy's own draw
                agent.deterministic_action = lambda dist: dist.sample()
            torch.manual_seed(args.seed)
            env = build_env(config_from_dict(config).env, seed=args.seed)
            returns, _, _ = agent.evaluate(env, args.episodes)
            env.close()
            cells.append(f"{np.mean(returns):.1f} ± {np.std(returns):.1f}")
        steps = ckpt["lightning_dreamer"]["policy_steps"] * config["env"]["action_repeat"]
        print(f"| {path} | {steps:,} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
