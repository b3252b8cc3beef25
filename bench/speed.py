"""Speed benchmark: prints figures, asserts nothing.

1. Seconds per gradient update (world model + actor + critic) of Dreamer V2 and Dreamer V1 at
   the same three sizes (tiny, small = deter 200 / CNN depth 16 / 2 x 200 MLPs, and the V2
   paper's Atari size: deter 600, CNN depth 48, 4 x 400 MLPs; 16 x 50 batches), in fp32 and
   bf16-mixed, both through the Lightning Trainer and by calling the same update directly.
2. Collection speed: agent steps/s of our Collector (policy in the loop and random actions)
   against the raw dm_control / gymnasium loop on the same task.

    python bench/speed.py [--updates 10] [--algos dreamer_v2 dreamer_v1] [--sizes tiny small atari] [--skip-env]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("MUJOCO_GL", "egl")
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_V1_HEADS = ["model.reward_layers", "model.discount_layers", "model.value_layers", "model.actor_layers"]
SIZES = {
    "dreamer_v2": {
        "tiny": ["model.deter=32", "model.hidden=32", "model.stoch=4", "model.classes=4", "model.cnn_depth=4",
                 "model.mlp_units=32", "model.mlp_layers=1", "replay.batch_size=4", "replay.seq_len=16"],
        "small": ["model.deter=200", "model.hidden=200", "model.stoch=16", "model.classes=16", "model.cnn_depth=16",
                  "model.mlp_units=200", "model.mlp_layers=2"],
        "atari": [],  # configs/v2_atari.yaml as it is: deter 600, CNN depth 48, 4 x 400 MLPs, 16 x 50 batches
    },
    # V1 at the same network sizes (its latent: a 30-dim Gaussian; 4 at tiny size), same batches.
    "dreamer_v1": {
        "tiny": ["model.deter=32", "model.hidden=32", "model.stoch=4", "model.cnn_depth=4", "model.mlp_units=32",
                 "model.mlp_layers=1", *(f"{k}=1" for k in _V1_HEADS), "replay.batch_size=4", "replay.seq_len=16"],
        "small": ["model.deter=200", "model.hidden=200", "model.stoch=30", "model.cnn_depth=16", "model.mlp_units=200",
                  "model.mlp_layers=2", *(f"{k}=2" for k in _V1_HEADS), "replay.batch_size=16", "replay.seq_len=50"],
        "atari": ["model.deter=600", "model.hidden=600", "model.stoch=30", "model.cnn_depth=48", "model.mlp_units=400",
                  "model.mlp_layers=4", *(f"{k}=4" for k in _V1_HEADS), "replay.batch_size=16", "replay.seq_len=50"],
    },
}
BASE = {"dreamer_v2": "configs/v2_atari.yaml", "dreamer_v1": "configs/v1_atari.yaml"}


def build(algo: str, size: str, run_dir: str):
    from lightning_dreamer.loading import load_config
    from lightning_dreamer.train import build_agent

    overrides = SIZES[algo][size] + [f"run.dir={run_dir}", "replay.capacity=5000", "replay.prefill=300",
                                     "replay.train_ratio=1e9", "replay.pretrain=0", "run.eval_every=0"]
    cfg = load_config([BASE[algo]], overrides)
    return cfg, build_agent(cfg)


def fill_replay(module, steps: int) -> None:
    """Random frames in replay: update speed does not depend on their content."""
    from lightning_dreamer.data import Replay
    from tensordict import TensorDict

    r = module.run_config.replay
    module.replay = Replay(r.capacity, r.batch_size, r.seq_len)
    shape = module.obs_shapes["pixels"]
    for i in range(steps):
        module.replay.add(TensorDict({
            "pixels": torch.randint(0, 255, shape, dtype=torch.uint8), "action": torch.zeros(module.action_dim),
            "reward": torch.tensor(0.0), "is_first": torch.tensor(i == 0), "is_terminal": torch.tensor(False),
            "episode": torch.tensor(0)}, batch_size=[]))


def direct_updates(module, n: int, precision: str) -> list[float]:
    """The same training_step with Lightning's hooks replaced by plain torch calls."""
    opts = module.configure_optimizers()
    module.optimizers = lambda: opts
    module.manual_backward = lambda loss: loss.backward()
    module.clip_gradients = lambda opt, gradient_clip_val, gradient_clip_algorithm: torch.nn.utils.clip_grad_norm_(
        [p for g in opt.param_groups for p in g["params"]], gradient_clip_val)
    module.log_dict = lambda *a, **k: None
    times = []
    for i in range(n + 1):
        start = time.perf_counter()
        batch = module.replay.sample()
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16-mixed" else contextlib.nullcontext()
        with ctx:
            module.training_step(batch, i)
        if i:  # the first update warms up allocators
            times.append(time.perf_counter() - start)
    return times


def trainer_updates(algo: str, size: str, n: int, precision: str) -> list[float]:
    import lightning as L
    from lightning.pytorch.callbacks import Callback

    class Timer(Callback):
        def __init__(self):
            self.times, self.last = [], None

        def on_train_batch_end(self, *args):
            now = time.perf_counter()
            if self.last is not None:
                self.times.append(now - self.last)
            self.last = now

    with tempfile.TemporaryDirectory() as tmp:
        cfg, module = build(algo, size, tmp)
        timer = Timer()
        threads = torch.get_num_threads()
        trainer = L.Trainer(max_steps=3 * (n + 1), precision=precision, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False, callbacks=[timer], max_epochs=-1)
        trainer.fit(module)
        torch.set_num_threads(threads)
    return timer.times  # batch end to batch end: sampling + update + hooks


def env_speed(steps: int) -> None:

    from lightning_dreamer.loading import load_config
    from lightning_dreamer.train import build_agent
    from lightning_dreamer.data import Collector
    from lightning_dreamer.envs import make_env

    print("\n## Collection: agent steps/s (1 process, 1 thread)")
    print("| env | raw loop | Collector, random actions | Collector, small policy | kept (random) |")
    print("|---|---|---|---|---|")
    torch.set_num_threads(1)
    for label, overrides in (("dmc cartpole_swingup pixels 64x64, repeat 2", []),
                             ("ALE Pong 64x64 grey, repeat 4 + max-pool", ["env.suite=atari", "env.name=Pong", "env.grayscale=true", "env.max_pool=true", "env.action_repeat=4", "env.sticky_actions=0.25"])):
        cfg = load_config(["configs/v2_dmc_cartpole_swingup.yaml", "configs/presets/cpu.yaml"], overrides)
        raw = raw_env_speed(cfg.env, steps)
        env = make_env(cfg.env, seed=0)
        collector = Collector(env, None, ("pixels",))
        collector.step(5)
        start = time.perf_counter()
        collector.step(steps)
        rand = steps / (time.perf_counter() - start)
        module = build_agent(cfg)
        policy = lambda obs, first, state: module.act(obs, first, state)  # noqa: E731
        start = time.perf_counter()
        with torch.no_grad():
            collector.step(steps // 2, policy)
        pol = (steps // 2) / (time.perf_counter() - start)
        print(f"| {label} | {raw:.1f} | {rand:.1f} | {pol:.1f} | {100 * rand / raw:.0f}% |")


def raw_env_speed(env_cfg, steps: int) -> float:
    """The plain library loop with the same rendering / frame work, no TorchRL."""
    import numpy as np

    if env_cfg.suite == "dmc":
        from dm_control import suite

        env = suite.load("cartpole", "swingup", task_kwargs={"random": 0})
        env.reset()
        spec = env.action_spec()
        start = time.perf_counter()
        for _ in range(steps):
            a = np.random.uniform(spec.minimum, spec.maximum)
            for _ in range(env_cfg.action_repeat):
                ts = env.step(a)
            env.physics.render(64, 64, camera_id=0)
            if ts.last():
                env.reset()
        return steps / (time.perf_counter() - start)
    import ale_py
    import gymnasium as gym

    gym.register_envs(ale_py)
    env = gym.make(f"ALE/{env_cfg.name}-v5", frameskip=env_cfg.action_repeat, repeat_action_probability=env_cfg.sticky_actions)
    env.reset(seed=0)
    start = time.perf_counter()
    for _ in range(steps):
        obs, r, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            env.reset()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--updates", type=int, default=10)
    parser.add_argument("--algos", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small", "atari"], choices=["tiny", "small", "atari"])
    parser.add_argument("--precisions", nargs="+", default=["32-true", "bf16-mixed"])
    parser.add_argument("--env-steps", type=int, default=400)
    parser.add_argument("--skip-env", action="store_true")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads (never more than free cores)")
    args = parser.parse_args()
    os.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.updates} updates per figure (median)")
    print("\n## Seconds per gradient update (sampling + world model + actor + critic)")
    print("| size | precision | algorithm | direct | Trainer | Trainer overhead |")
    print("|---|---|---|---|---|---|")
    for size in args.sizes:
        for precision in args.precisions:
            for algo in args.algos:
                with tempfile.TemporaryDirectory() as tmp:
                    _, module = build(algo, size, tmp)
                    fill_replay(module, 400)
                    direct = statistics.median(direct_updates(module, args.updates, precision))
                trainer = statistics.median(trainer_updates(algo, size, args.updates, precision))
                print(f"| {size} | {precision} | {algo} | {direct:.3f} | {trainer:.3f} | {100 * (trainer / direct - 1):+.1f}% |",
                      flush=True)
    if not args.skip_env:
        env_speed(args.env_steps)


if __name__ == "__main__":
    main()
