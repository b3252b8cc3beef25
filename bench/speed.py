"""Speed benchmark: prints figures, asserts nothing.

1. Seconds per gradient update (world model + actor + critic) of Dreamer V2 and Dreamer V1 at
   the same three sizes (tiny, small = deter 200 / CNN depth 16 / 2 x 200 MLPs, and the V2
   paper's Atari size: deter 600, CNN depth 48, 4 x 400 MLPs; 16 x 50 batches), in fp32 and
   bf16-mixed, both through the Lightning Trainer and by calling the same update directly (each in
   a fresh process, unless ``--same-process``), eager and with the update's passes compiled
   (``--compile eager reduce-overhead``; ``run.compile``).
   With ``--profile`` (CUDA): kernels and host launches per update and the GPU's busy share.
2. End to end (``--fit``): env frames/s of a real ``fit`` (Pong, pixel cartpole) with ``--num-envs``
   environments per rank: collection at the config's train ratio and the updates, after a warm-up.
3. Collection speed: agent steps/s of our Collector (policy in the loop and random actions)
   against the raw dm_control / gymnasium loop on the same task.

    python bench/speed.py [--device cpu|cuda] [--compile eager reduce-overhead] [--updates 10]
                          [--algos dreamer_v2 dreamer_v1] [--sizes tiny small atari] [--skip-env] [--profile]
    python bench/speed.py --no-updates --skip-env --fit pong cartpole --num-envs 1 8 --device cuda   # end to end
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import tempfile
import time
from typing import Callable

os.environ.setdefault("MUJOCO_GL", "egl")
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from lightning_dreamer.hardware import keep_freed_memory, wants_kept_memory  # noqa: E402

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


def build(algo: str, size: str, run_dir: str, compile_mode: str = "eager"):
    from lightning_dreamer.loading import load_config
    from lightning_dreamer.train import build_agent

    overrides = SIZES[algo][size] + [f"run.dir={run_dir}", "replay.capacity=5000", "replay.prefill=300",
                                     "replay.train_ratio=1e9", "replay.pretrain=0", "run.eval_every=0",
                                     f"run.compile={compile_mode}", "run.log_every=1000000"]
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


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def prepare_direct(module, device: str, compile_mode: str):
    """The module's training_step with Lightning's hooks replaced by plain torch calls."""
    module.to(device)
    if compile_mode != "eager":
        module.compile_passes(compile_mode)
    opts = module.configure_optimizers()
    module.optimizers = lambda: opts
    module.manual_backward = lambda loss: loss.backward()
    module.clip_gradients = lambda opt, gradient_clip_val, gradient_clip_algorithm: torch.nn.utils.clip_grad_norm_(
        [p for g in opt.param_groups for p in g["params"]], gradient_clip_val)
    module.log_dict = lambda *a, **k: None
    module.log_update = lambda logs: None
    module.bench_batches = iter(module.train_dataloader())  # what fit reads: prefetched by a thread on a GPU


def direct_step(module, device: str, precision: str, i: int) -> None:
    batch = {k: v.to(device, non_blocking=True) for k, v in next(module.bench_batches).items()}
    ctx = torch.autocast(device, dtype=torch.bfloat16) if precision == "bf16-mixed" else contextlib.nullcontext()
    with ctx:
        module.training_step(batch, i)
    module.updates += 1


def direct_updates(module, n: int, precision: str, device: str, warmup: int) -> tuple[float, float]:
    """(mean seconds per update over ``n`` updates, seconds of the ``warmup`` updates before them:
    compilation and CUDA graph capture)."""
    start = time.perf_counter()
    for i in range(warmup):
        direct_step(module, device, precision, i)
    sync(device)
    warm = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(n):
        direct_step(module, device, precision, warmup + i)
    sync(device)
    return (time.perf_counter() - start) / n, warm


def profile_updates(module, precision: str, device: str, n: int = 3, table: str | None = None, title: str = "") -> dict[str, float]:
    """Kernels run and host launches per update, and the share of wall time the GPU was busy."""
    from torch.profiler import ProfilerActivity, profile

    sync(device)
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for i in range(n):
            direct_step(module, device, precision, 10_000 + i)
        sync(device)
    wall = time.perf_counter() - start
    kernels, busy, launches, graphs = 0, 0.0, 0, 0
    for e in prof.events():
        if e.device_type.name == "CUDA":
            kernels += 1
            busy += e.time_range.elapsed_us() * 1e-6
        elif e.name in ("cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cuLaunchKernelEx"):
            launches += 1
        elif e.name in ("cudaGraphLaunch", "cuGraphLaunch"):
            graphs += 1
    if table:
        with open(table, "a") as f:
            f.write(f"\n## {title}\n{prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=25)}\n")
    return {"kernels": kernels / n, "launches": launches / n, "graphs": graphs / n, "busy": busy / wall}


def trainer_updates(algo: str, size: str, n: int, precision: str, device: str, compile_mode: str, warmup: int) -> tuple[float, float]:
    """(mean seconds per update through the Trainer, batch end to batch end: sampling + update +
    hooks; the share of that time spent neither in ``training_step`` nor in sampling, measured in
    the same updates, so that it does not depend on how fast the machine runs that minute; with
    batches prefetched by a thread (a GPU) sampling overlaps the update, and the share is a lower bound)."""
    import lightning as L
    from lightning.pytorch.callbacks import Callback

    class Timer(Callback):
        def __init__(self):
            self.marks: list[float] = []
            self.inside = 0.0  # seconds in training_step and in replay sampling, timed updates only

        def timed(self, module, fn):
            def run(*a, **k):
                start = time.perf_counter()
                out = fn(*a, **k)
                # between the marks: this callback's batch-end hook runs before the module counts the update
                if warmup < module.updates <= warmup + n:
                    sync(device)
                    self.inside += time.perf_counter() - start
                return out
            return run

        def on_fit_start(self, trainer, module):
            module.training_step = self.timed(module, module.training_step)
            module.replay.sample = self.timed(module, module.replay.sample)

        def on_train_batch_end(self, trainer, module, *args):
            if module.updates in (warmup, warmup + n):
                sync(device)
                self.marks.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as tmp:
        cfg, module = build(algo, size, tmp, compile_mode)
        timer = Timer()
        threads = torch.get_num_threads()
        trainer = L.Trainer(max_steps=3 * (warmup + n + 1), precision=precision, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False, callbacks=[timer], max_epochs=-1,
                            accelerator="gpu" if device == "cuda" else "cpu", devices=1)
        trainer.fit(module)  # TF32 matmuls on a GPU: set for the whole process in main()
        torch.set_num_threads(threads)
    total = timer.marks[1] - timer.marks[0]
    return total / n, 1 - timer.inside / total


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


FIT_CONFIGS = {  # end to end: a real fit (collection at the config's train ratio + updates)
    "pong": ["configs/v2_atari.yaml"],
    "cartpole": ["configs/v2_dmc_cartpole_swingup.yaml"],
    "cartpole-cpu": ["configs/v2_dmc_cartpole_swingup.yaml", "configs/presets/cpu.yaml"],
}


def fit_fps(name: str, num_envs: int, precision: str, device: str, mode: str, updates: int, warmup: int) -> tuple[float, float, float]:
    """(env frames/s, updates/s, agent steps/s) of a real fit of ``FIT_CONFIGS[name]`` with
    ``num_envs`` envs, timed from update ``warmup`` to ``warmup + updates`` (after the prefill)."""
    import lightning as L
    from lightning.pytorch.callbacks import Callback

    from lightning_dreamer.loading import load_config
    from lightning_dreamer.train import build_agent

    class Clock(Callback):
        def __init__(self):
            self.marks: list[tuple[float, int, int]] = []

        def on_train_batch_end(self, trainer, module, *args):
            if module.updates in (warmup, warmup + updates):
                sync(device)
                self.marks.append((time.perf_counter(), module.env_steps, module.policy_steps))

    with tempfile.TemporaryDirectory() as tmp:
        overrides = [f"run.dir={tmp}", f"env.num_envs={num_envs}", "run.eval_every=0", f"run.compile={mode}",
                     "replay.pretrain=0", "run.checkpoint_every=0", "run.log_every=1000000"]
        cfg = load_config(FIT_CONFIGS[name], overrides)
        module = build_agent(cfg)
        clock = Clock()
        threads = torch.get_num_threads()
        trainer = L.Trainer(max_steps=3 * (warmup + updates + 1), precision=precision, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False, callbacks=[clock], max_epochs=-1,
                            accelerator="gpu" if device == "cuda" else "cpu", devices=1)
        trainer.fit(module)
        torch.set_num_threads(threads)
    (t0, e0, p0), (t1, e1, p1) = clock.marks
    return (e1 - e0) / (t1 - t0), updates / (t1 - t0), (p1 - p0) / (t1 - t0)


def direct_part(algo: str, size: str, precision: str, mode: str, args) -> dict:
    """The direct update's figures, measured in this process."""
    torch._dynamo.reset()
    with tempfile.TemporaryDirectory() as tmp:
        _, module = build(algo, size, tmp)
        fill_replay(module, 400)
        prepare_direct(module, args.device, mode)
        direct, warm = direct_updates(module, args.updates, precision, args.device, args.warmup)
        prof = profile_updates(module, precision, args.device, table=args.profile_table,
                               title=f"{algo} {size} {precision} {mode}") if args.profile else None
    del module
    torch._dynamo.reset()
    return {"direct": direct, "warm": warm, "prof": prof}


def trainer_part(algo: str, size: str, precision: str, mode: str, args) -> dict:
    trainer, own = trainer_updates(algo, size, args.updates, precision, args.device, mode, args.warmup)
    return {"trainer": trainer, "own": own}


PARTS: dict[str, Callable[..., dict]] = {"direct": direct_part, "trainer": trainer_part}


def in_fresh_process(part: str, algo: str, size: str, precision: str, mode: str, args) -> dict:
    """``PARTS[part]`` in a new Python process: the direct update and the Trainer each start from an
    empty heap and a cold allocator, so neither is timed in memory the other one shaped."""
    import json
    import subprocess

    cmd = [sys.executable, os.path.abspath(__file__), "--part", json.dumps([part, algo, size, precision, mode]),
           "--updates", str(args.updates), "--warmup", str(args.warmup), "--device", args.device,
           "--threads", str(args.threads), "--keep-freed-memory", args.keep_freed_memory]
    if args.profile:
        cmd.append("--profile")
    if args.profile_table:
        cmd += ["--profile-table", args.profile_table]
    done = subprocess.run(cmd, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines or not lines[-1].startswith("{"):
        err = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"the {part} process exited {done.returncode}: {err}")
    return json.loads(lines[-1])


def speed_row(algo: str, size: str, precision: str, mode: str, args) -> str:
    """One table row. With ``--repeat N`` the direct update and the Trainer alternate N times and
    the row gives the medians, with the range of the N Trainer / direct ratios."""
    import statistics

    def part(name: str, a) -> dict:
        return in_fresh_process(name, algo, size, precision, mode, a) if a.fresh_process else PARTS[name](algo, size, precision, mode, a)

    unprofiled = argparse.Namespace(**{**vars(args), "profile": False, "profile_table": None})
    ds, ts = [], []
    for i in range(args.repeat):  # the profiler runs once, in the last round (the row shows that one)
        ds.append(part("direct", args if i == args.repeat - 1 else unprofiled))
        ts.append({"trainer": math.nan, "own": math.nan} if args.no_trainer else part("trainer", args))
    direct = statistics.median(d["direct"] for d in ds)
    warm = statistics.median(d["warm"] for d in ds)
    trainer = statistics.median(t["trainer"] for t in ts)
    lightning = statistics.median(t["own"] for t in ts)
    ratios = sorted(100 * (t["trainer"] / d["direct"] - 1) for d, t in zip(ds, ts))
    spread = f" ({ratios[0]:+.0f}..{ratios[-1]:+.0f}%)" if len(ratios) > 1 and not args.no_trainer else ""
    row = (f"| {size} | {precision} | {mode} | {algo} | {direct:.4f} | {trainer:.4f} | "
           f"{statistics.median(ratios):+.1f}%{spread} | {100 * lightning:.1f}% | {warm:.0f} |")
    prof = ds[-1]["prof"]
    if prof:
        row += f" {prof['kernels']:.0f} | {prof['launches']:.0f} | {prof['graphs']:.0f} | {100 * prof['busy']:.0f}% |"
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--updates", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=5, help="updates before timing (compilation, CUDA graph capture)")
    parser.add_argument("--algos", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small", "atari"], choices=["tiny", "small", "atari"])
    parser.add_argument("--precisions", nargs="+", default=["32-true", "bf16-mixed"])
    parser.add_argument("--compile", nargs="+", default=["eager"], help="run.compile modes to compare")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--no-trainer", action="store_true", help="time the direct update only")
    parser.add_argument("--profile", action="store_true", help="kernels, launches and GPU busy share (CUDA)")
    parser.add_argument("--profile-table", help="append the profiler's busiest host ops per row to this file")
    parser.add_argument("--env-steps", type=int, default=400)
    parser.add_argument("--skip-env", action="store_true")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads (never more than free cores)")
    parser.add_argument("--fit", nargs="*", default=[], choices=list(FIT_CONFIGS),
                        help="end to end: env frames/s of a real fit of these configs (Dreamer V2)")
    parser.add_argument("--num-envs", nargs="+", type=int, default=[1], help="env.num_envs values for --fit")
    parser.add_argument("--no-updates", action="store_true", help="skip the seconds-per-update table")
    parser.add_argument("--keep-freed-memory", default="auto", choices=["auto", "on", "off"],
                        help="run.keep_freed_memory for the whole process, as fit sets it (auto: on for --device cpu)")
    parser.add_argument("--same-process", dest="fresh_process", action="store_false",
                        help="time the direct update and the Trainer one after the other in this process "
                             "(default: each in a fresh process)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="measure each row this many times, direct and Trainer alternating; print the medians")
    parser.add_argument("--part", help=argparse.SUPPRESS)  # internal: one half of a row, printed as JSON
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error(f"--repeat must be >= 1, got {args.repeat}")
    os.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    torch.set_num_threads(args.threads)
    kept = wants_kept_memory(args.keep_freed_memory, args.device) and keep_freed_memory()
    if args.device == "cuda":
        torch.set_float32_matmul_precision("high")
    if args.part:
        import json

        name, *row = json.loads(args.part)
        print(json.dumps(PARTS[name](*row, args)))
        return
    if args.device == "cuda":
        print(f"GPU: {torch.cuda.get_device_name()}")
    print(f"torch {torch.__version__}, {args.device}, {torch.get_num_threads()} threads, mean of {args.updates} updates "
          f"after {args.warmup} warm-up updates, freed host memory {'kept' if kept else 'returned to the OS'}, "
          f"{'direct and Trainer each in a fresh process' if args.fresh_process else 'direct, then Trainer, in one process'}"
          f"{f', alternating {args.repeat} times (medians)' if args.repeat > 1 else ''}")
    if not args.no_updates:
        update_table(args)
    if args.fit:
        print(f"\n## End to end: a real fit (collection at the config's train ratio + updates), {args.updates} updates "
              f"after {args.warmup}")
        print("| config | env.num_envs | precision | compile | env frames/s | updates/s | agent steps/s |")
        print("|---|---|---|---|---|---|---|")
        for name in args.fit:
            for n in args.num_envs:
                for precision in args.precisions:
                    for mode in args.compile:
                        try:
                            fps, ups, sps = fit_fps(name, n, precision, args.device, mode, args.updates, args.warmup)
                            print(f"| {name} | {n} | {precision} | {mode} | {fps:,.0f} | {ups:.2f} | {sps:,.0f} |", flush=True)
                        except Exception as err:
                            print(f"| {name} | {n} | {precision} | {mode} | failed: {type(err).__name__}: "
                                  f"{str(err).strip().splitlines()[0][:300] if str(err).strip() else ''} |", flush=True)
    if not args.skip_env:
        env_speed(args.env_steps)


def update_table(args) -> None:
    print("\n## Seconds per gradient update (sampling + world model + actor + critic)")
    extra = " kernels/update | host launches/update | graph launches/update | GPU busy |" if args.profile else ""
    print(f"| size | precision | compile | algorithm | direct | Trainer | Trainer / direct | Trainer's own share | warm-up s |{extra}")
    print("|---|---|---|---|---|---|---|---|---|" + ("---|---|---|---|" if args.profile else ""))
    for size in args.sizes:
        for precision in args.precisions:
            for mode in args.compile:
                for algo in args.algos:
                    try:
                        print(speed_row(algo, size, precision, mode, args), flush=True)
                    except Exception as err:  # one failed row is a figure too
                        print(f"| {size} | {precision} | {mode} | {algo} | failed: {type(err).__name__}: "
                              f"{str(err).strip().splitlines()[0][:300] if str(err).strip() else ''} |", flush=True)


if __name__ == "__main__":
    main()
