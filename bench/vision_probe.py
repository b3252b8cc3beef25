"""How many world-model updates does a pixel Dreamer need to see the cart and pole? A diagnostic
(prints, asserts nothing).

Builds a fresh agent with a pixel run's hyperparameters (``--set model.KEY=VALUE`` changes some: the
CNN depth, the model's learning rate, ...), trains its world model alone on the run's saved replay
(``--batch`` sequences of the run's length per update), and every ``--every`` updates prints what it
sees on held-out episodes: the reconstruction error against that of the episodes' mean image (1.0:
it draws the mean image, nothing of the cart or pole) and a linear probe (bench/probe_model.py's) of
the true state from its features, R² of the cart position, the pole's cosine and sine and the two
velocities. The episodes are played with uniform random actions held 10 agent steps, which swing the
pole (the zoo's held random baseline, 181 on average): 3 to fit the probe, 3 to score it.

    python bench/vision_probe.py runs/v2_pixels/checkpoints/last.ckpt --updates 1500
    python bench/vision_probe.py runs/v2_pixels/checkpoints/last.ckpt --updates 1500 --set model.cnn_depth=32

``--recipe KEY`` builds the fresh model from a recipe of bench/learn.py instead of the run's
hyperparameters, so one saved replay (of any pixel run on the same env) compares recipes:

    python bench/vision_probe.py runs/zoo/dreamer_v1/dmc_cartpole_swingup/seed0/checkpoints/last.ckpt \
        --recipe v2_pixels --set model.cnn_depth=32
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

import numpy as np
import torch
import yaml

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> None:
    from bench.probe_model import model_update, play, saved_replay, sees
    from lightning_dreamer.checkpoint import read_checkpoint, run_config_of
    from lightning_dreamer.registry import get_algo

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ckpt", help="a pixel Dreamer run's checkpoint, its replay saved beside it")
    parser.add_argument("--recipe", help="a bench/learn.py recipe (v2_pixels, v1_pixels, ...) whose model to train, "
                        "instead of the run's")
    parser.add_argument("--set", nargs="*", default=[], metavar="model.KEY=VALUE", help="hyperparameters to change")
    parser.add_argument("--updates", type=int, default=1500)
    parser.add_argument("--every", type=int, default=250)
    parser.add_argument("--batch", type=int, help="sequences per update (default: the run's replay.batch_size)")
    parser.add_argument("--seed", type=int, default=0, help="the fresh model's initialisation and its batches")
    parser.add_argument("--probe-seed", type=int, default=900, help="the probe episodes' first seed")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast, as precision bf16-mixed trains")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    changes = {}
    for item in args.set:
        key, _, value = item.partition("=")
        if not key.startswith("model.") or not value:
            raise SystemExit(f"--set takes model.KEY=VALUE, got {item!r}")
        changes[key[len("model."):]] = yaml.safe_load(value)
    torch.set_num_threads(args.threads)
    ckpt = read_checkpoint(args.ckpt)
    config = run_config_of(ckpt)
    if args.recipe:
        agent, config = recipe_agent(args.recipe, args.set, config, args.seed)
    else:
        hparams = dict(ckpt["hyper_parameters"])
        unknown = sorted(set(changes) - set(config["model"]))
        if unknown:
            raise SystemExit(f"--set: unknown model keys {unknown}; this run's are {sorted(config['model'])}")
        torch.manual_seed(args.seed)
        agent = get_algo(config["algo"])(**{**hparams, **changes})
    if "pixels" not in agent.obs_keys:
        raise SystemExit(f"{args.ckpt} is not a pixel run (its observations: {agent.obs_keys})")

    replay = saved_replay(args.ckpt, config, args.batch)
    fit = [play(None, config, args.probe_seed + i, hold=10) for i in range(3)]
    test = [play(None, config, args.probe_seed + 3 + i, hold=10) for i in range(3)]
    which = f"recipe {args.recipe}" if args.recipe else "as the run"
    print(f"{config['algo']} {which} {changes or ''}: {sum(p.numel() for p in agent.world_model.parameters()):,} "
          f"world-model parameters, {len(replay):,} replay steps, batch {replay.batch_size} x {replay.seq_len}, "
          f"probe episodes return {[round(float(e[2].sum())) for e in fit + test]}", flush=True)
    torch.manual_seed(args.seed)  # the batches (play seeded the generator for its episodes)
    optimiser = agent.configure_optimizers()[0]
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if args.bf16 else contextlib.nullcontext
    start, image = time.perf_counter(), []
    for i in range(1, args.updates + 1):
        agent.train()
        logs = model_update(agent, optimiser, replay.sample(), autocast)
        image.append(float(logs["loss/image"]))
        if i % args.every == 0 or i == args.updates:
            agent.eval()
            print(f"after {i} updates ({(time.perf_counter() - start) / i:.2f} s each; image loss of the last "
                  f"{len(image)} {np.mean(image):.2f}, KL {float(logs['kl/value']):.2f}): ", end="", flush=True)
            with torch.no_grad():
                sees(agent, fit, test)
            image = []


def recipe_agent(key: str, overrides: list[str], run: dict, seed: int):
    """A fresh agent of bench/learn.py's recipe ``key`` (with ``overrides``) and its config, for a
    replay saved by ``run`` (its env must be the recipe's)."""
    from bench.learn import BENCHMARKS, ROOT
    from lightning_dreamer.config import to_dict
    from lightning_dreamer.errors import UserError
    from lightning_dreamer.loading import load_config
    from lightning_dreamer.train import build_agent

    if key not in BENCHMARKS:
        raise SystemExit(f"--recipe: no recipe {key!r}; bench/learn.py has {sorted(BENCHMARKS)}")
    files, recipe_overrides = BENCHMARKS[key][:2]
    try:
        cfg = load_config([os.path.join(ROOT, f) for f in files], [*recipe_overrides, *overrides])
    except UserError as err:
        raise SystemExit(f"--recipe {key}: {err}") from None
    config = to_dict(cfg)
    keys = ("suite", "name", "obs", "image_size", "grayscale", "action_repeat")  # what the replay's steps depend on
    ours, theirs = ({k: c["env"].get(k) for k in keys} for c in (config, run))
    if ours != theirs:
        raise SystemExit(f"--recipe {key}: its env {ours} is not the run's {theirs}")
    torch.manual_seed(seed)
    return build_agent(cfg), config


if __name__ == "__main__":
    main()
