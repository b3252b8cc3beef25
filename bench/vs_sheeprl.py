"""SheepRL's Dreamer V2 update at Atari size, timed the way bench/speed.py times ours: prints figures.

The CPU goal of issue #15 is measured against SheepRL 0.8.4 on the same machine, back to back.
SheepRL lives in a separate virtual environment (it pins its own packages):

    python3 -m venv /tmp/sheep && /tmp/sheep/bin/pip install torch==2.13.0 sheeprl==0.8.4
    /tmp/sheep/bin/python bench/vs_sheeprl.py --updates 3 --warmup 1 --threads 2
    python bench/speed.py --device cpu --sizes atari --algos dreamer_v2 --precisions 32-true --skip-env \
        --updates 3 --warmup 1 --threads 2

Both use the sizes of the DreamerV2 paper's Atari agent (deter 600, 32 x 32 latents, CNN depth 48,
4 x 400 MLPs, 16 x 50 batches of 64x64 grey frames, 6 actions, REINFORCE actor) on random frames;
SheepRL's update is its ``train()`` (world model, actor, critic, three optimiser steps) with its
own config defaults otherwise, except that it learns the discount head as ours does (``--continues 0``:
SheepRL's default, without it; 2 % faster on a 2-core AVX2 CPU). Distribution arguments are not validated,
as SheepRL's own command line sets. Speed does not depend on the frames' content.
"""

from __future__ import annotations

import argparse
import os
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--updates", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--continues", type=int, choices=[0, 1], default=1,
                        help="learn the discount (continue) head, as the paper's Atari agent and configs/v2_atari.yaml "
                        "do (1, the default here); SheepRL's own default leaves it off (0)")
    parser.add_argument("--profile-table", help="append the profiler's busiest ops over --updates more updates to this "
                        "file (the table bench/speed.py --profile-table writes for ours)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import gymnasium as gym
    import hydra
    import sheeprl
    from lightning import Fabric
    from omegaconf import OmegaConf
    from sheeprl.algos.dreamer_v2.agent import build_agent
    from sheeprl.algos.dreamer_v2.dreamer_v2 import train
    from sheeprl.algos.dreamer_v2.utils import build_optimizer
    from sheeprl.utils.utils import dotdict

    config_dir = os.path.join(os.path.dirname(sheeprl.__file__), "configs")
    with hydra.initialize_config_dir(config_dir=config_dir, version_base="1.3"):
        raw = hydra.compose(config_name="config", overrides=[
            "exp=dreamer_v2", "env.grayscale=True", "fabric.accelerator=cpu", "metric.log_level=0",
            f"fabric.precision={args.precision}", "algo.cnn_keys.encoder=[rgb]", "algo.cnn_keys.decoder=[rgb]",
            f"algo.world_model.use_continues={bool(args.continues)}"])
    cfg = dotdict(OmegaConf.to_container(raw, resolve=True, throw_on_missing=False))
    torch.distributions.Distribution.set_default_validate_args(cfg.distribution.validate_args)  # as SheepRL's CLI does
    fabric = Fabric(accelerator="cpu", devices=1, precision=args.precision)
    actions_dim = [6]
    obs_space = gym.spaces.Dict({"rgb": gym.spaces.Box(0, 255, (1, 64, 64), "uint8")})
    world_model, actor, critic, target_critic, _ = build_agent(fabric, actions_dim, False, cfg, obs_space)
    opts = [build_optimizer(cfg.algo[k].optimizer, m.parameters())
            for k, m in (("world_model", world_model), ("actor", actor), ("critic", critic))]
    opts = fabric.setup_optimizers(*opts)
    w = cfg.algo.world_model
    print(f"sheeprl {sheeprl.__version__}: deter {w.recurrent_model.recurrent_state_size}, latents "
          f"{w.stochastic_size} x {w.discrete_size}, CNN depth {w.encoder.cnn_channels_multiplier}, "
          f"{cfg.algo.mlp_layers} x {cfg.algo.dense_units} MLPs, batch {cfg.algo.per_rank_batch_size} x "
          f"{cfg.algo.per_rank_sequence_length}, discount head {w.use_continues}, "
          f"{args.threads} threads, {args.precision}", flush=True)

    t, b = cfg.algo.per_rank_sequence_length, cfg.algo.per_rank_batch_size
    actions = torch.nn.functional.one_hot(torch.randint(0, 6, (t, b)), 6).float()

    def batch() -> dict[str, torch.Tensor]:
        return {"rgb": torch.randint(0, 255, (t, b, 1, 64, 64), dtype=torch.uint8).float(), "actions": actions,
                "rewards": torch.zeros(t, b, 1), "terminated": torch.zeros(t, b, 1), "truncated": torch.zeros(t, b, 1),
                "is_first": torch.zeros(t, b, 1)}

    def update() -> None:
        train(fabric, world_model, actor, critic, target_critic, *opts, batch(), None, cfg, actions_dim)

    start = time.perf_counter()
    for _ in range(args.warmup):
        update()
    warm = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(args.updates):
        update()
    per = (time.perf_counter() - start) / args.updates
    print(f"| sheeprl dreamer_v2 atari | {args.precision} | {per:.4f} s/update (mean of {args.updates}) | "
          f"warm-up {warm:.0f} s |", flush=True)
    if args.profile_table:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.updates):
                update()
        with open(args.profile_table, "a") as f:
            f.write(f"\n## sheeprl dreamer_v2 atari {args.precision}, {args.updates} updates\n"
                    f"{prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=25)}\n")


if __name__ == "__main__":
    main()
