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
sys.path.insert(0, os.path.join(ROOT, "bench"))

from zoo import evaluate  # noqa: E402  (the zoo's evaluation: its seed, deterministic policy)

CHOICES = {"mode": lambda dist: dist.mode(), "median": lambda dist: dist.median(), "sample": lambda dist: dist.sample()}


def main() -> int:
    from lightning_dreamer.checkpoint import agent_from_checkpoint, env_steps_of, read_checkpoint, run_config_of

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--episodes", type=int, default=10)
    args = parser.parse_args()
    print("| checkpoint | env steps | " + " | ".join(CHOICES) + " |\n|---|---|---|---|---|")
    for path in args.checkpoints:
        ckpt = read_checkpoint(path)
        agent, config = agent_from_checkpoint(ckpt), run_config_of(ckpt)
        if config["algo"] != "dreamer_v1" or agent.discrete:
            print(f"| {path} | not a continuous-action Dreamer V1 agent |")
            continue
        cells = []
        for choose in CHOICES.values():
            agent.deterministic_action = choose  # the action the evaluation plays
            cells.append("{:.1f} ± {:.1f}".format(*evaluate(agent, config, args.episodes)))
        steps = env_steps_of(ckpt)
        print(f"| {path} | {steps:,} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
