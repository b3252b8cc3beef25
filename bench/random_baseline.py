"""Returns of random policies on a benchmark (by hand, not in CI): the floor a learner must beat.

    python bench/random_baseline.py --config configs/v2_dmc_cartpole_swingup.yaml --hold 1 10 --episodes 10

Plays uniform random actions, each drawn anew every ``--hold`` agent steps (1: i.i.d. noise, the
random baseline of the papers' score files; 10: the ``replay.prefill_hold=10`` exploration of the
zoo's recipes), on the zoo's evaluation seed, and prints mean ± std per hold. A dm_control task is
played from its state vector whatever the config says: the reward does not depend on the
observation, and nothing has to be rendered. Extra ``key=value`` arguments override the config.
"""

from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

from zoo import EVAL_SEED  # noqa: E402  (seeds no training run uses)


def random_returns(env_cfg, hold: int, episodes: int, seed: int) -> list[float]:
    """Returns of ``episodes`` episodes of uniform random actions held ``hold`` agent steps."""
    import torch

    from lightning_dreamer.algos.base import build_env
    from lightning_dreamer.data.collector import run_episodes
    from lightning_dreamer.spec import EnvSpec

    env = build_env(env_cfg, seed=seed)
    returns, _, _ = run_episodes(env, None, episodes, EnvSpec.from_env(env).obs_keys,
                                 generator=torch.Generator().manual_seed(seed), hold=hold)
    env.close()
    return returns


def main() -> int:
    import numpy as np

    from lightning_dreamer.errors import UserError
    from lightning_dreamer.loading import load_config

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", action="append", required=True, help="YAML config(s), merged left to right")
    parser.add_argument("--hold", type=int, nargs="+", default=[1, 10], help="agent steps each random action is held")
    parser.add_argument("--episodes", type=int, default=10)
    args, overrides = parser.parse_known_args()
    if args.episodes < 1 or min(args.hold) < 1:
        print("error: --episodes and every --hold must be >= 1", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.config, overrides)
        if cfg.env.suite == "dmc":
            cfg.env.obs = "state"
        print(f"{cfg.env.suite}:{cfg.env.name}, action repeat {cfg.env.action_repeat}, {args.episodes} episodes "
              f"on seed {EVAL_SEED}\n\n| random actions held | return (mean ± std) | min | max |\n|---|---|---|---|")
        for hold in args.hold:
            returns = np.array(random_returns(cfg.env, hold, args.episodes, EVAL_SEED))
            print(f"| {hold} agent step{'s' if hold > 1 else ''} | {returns.mean():.1f} ± {returns.std():.1f} | "
                  f"{returns.min():.1f} | {returns.max():.1f} |", flush=True)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
