"""Command line: ``python -m lightning_dreamer {fit,eval,compare,zoo,doctor,algos} ...``

fit     [--config A.yaml [--config preset.yaml ...]] [key=value | --key value ...]
        [--trainer.OPTION VALUE ...] [--ckpt_path PATH|last|auto] [--print_config]
        [--init zoo:NAME|PATH]  (start from these weights: fine-tuning)
eval    --ckpt PATH|zoo:NAME [--episodes N] [--video FILE.mp4|.gif] [--seed S]
compare NAME=RUN_DIR [NAME=RUN_DIR ...] (a name repeated: its seeds) [--budget N] [--marks N ...] [--baseline NAME=RETURN]
        [--svg FILE.svg]   (a table and learning curves from the runs' eval.csv)
zoo     list   (the published agents: name, algorithm, env, score of the weights and over training seeds, env steps, size)
doctor  what this machine can do (CPU features and precision, GPUs, rendering, ROMs, versions)
algos   list the registered algorithms

Exit codes: 0 done, 2 bad input (one line on stderr, nothing changed), 128 + N stopped by signal N
after saving a checkpoint (130 Ctrl-C, 143 SIGTERM).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

USAGE = __doc__
DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "default.yaml")


class CLIError(Exception):
    """A bad command line (arguments, paths); printed on one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse's errors as one line (CLIError) instead of the usage text and exit."""

    def error(self, message: str):
        raise CLIError(f"{message} (see: {self.prog} --help)")


def _split_overrides(extra: list[str]) -> list[str]:
    """Turn ``--a.b v``, ``--a.b=v`` and ``a.b=v`` into OmegaConf dotlist entries."""
    out, i = [], 0
    while i < len(extra):
        arg = extra[i]
        if arg.startswith("--"):
            key = arg[2:]
            if "=" in key:
                out.append(key)
            elif i + 1 < len(extra) and not extra[i + 1].startswith("--"):
                out.append(f"{key}={extra[i + 1]}")
                i += 1
            else:
                raise CLIError(f"option '{arg}' needs a value (write --{key} VALUE or {key}=VALUE)")
        elif "=" in arg:
            out.append(arg)
        else:
            raise CLIError(f"unexpected argument '{arg}': overrides look like key=value, e.g. env.name=cartpole_swingup")
        i += 1
    return out


def _check_run_dir(run_dir: str) -> None:
    """run.dir must be a directory this process can write (checked before any work)."""
    probe = run_dir
    while probe and not os.path.exists(probe):
        probe = os.path.dirname(probe)
    probe = probe or "."
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise CLIError(f"run.dir={run_dir} is a file; give a directory")
    if not os.path.isdir(probe) or not os.access(probe, os.W_OK | os.X_OK):
        raise CLIError(f"run.dir={run_dir}: cannot create or write it ({probe} is not a writable directory)")


def cmd_fit(args: argparse.Namespace, extra: list[str]) -> int:
    from omegaconf import OmegaConf

    from lightning_dreamer.checkpoint import read_checkpoint, run_config_of
    from lightning_dreamer.loading import load_config

    overrides = _split_overrides(extra)
    ckpt_path = args.ckpt_path
    configs = list(args.config or [])
    ckpt = None  # each checkpoint file is read once here (Lightning reads it again to restore)
    if ckpt_path and ckpt_path not in ("last", "auto") and not configs:
        # Resume without YAML: the config travels inside the checkpoint, and goes through the same
        # validation as a fresh run's (overrides included).
        ckpt = read_checkpoint(ckpt_path)
        cfg = load_config([], overrides, base=run_config_of(ckpt))
    else:
        if not configs and not ckpt_path:
            configs = [DEFAULT_CONFIG]
            print(f"no --config given: using the embedded default {DEFAULT_CONFIG}")
        cfg = load_config(configs, overrides)
    if args.print_config:
        print(OmegaConf.to_yaml(cfg, resolve=True), end="")
        return 0
    run_dir = cfg.run.dir
    _check_run_dir(run_dir)
    last = os.path.join(run_dir, "checkpoints", "last.ckpt")
    requeued = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0) > 0 and not ckpt_path
    if ckpt_path == "auto" or requeued:
        # Resume if this run.dir holds a run, else start it (a requeued SLURM job does this by itself).
        ckpt_path = last if os.path.isfile(last) else None
        if ckpt_path and requeued:
            print(f"SLURM requeue (restart {os.environ['SLURM_RESTART_COUNT']}): resuming {last}")
    elif ckpt_path == "last":
        if not os.path.isfile(last):
            raise CLIError(f"--ckpt_path last: no checkpoint at {last} (run.dir={run_dir})")
        ckpt_path = last
    if ckpt_path and ckpt is None:
        ckpt = read_checkpoint(ckpt_path)
    if ckpt is not None:
        _check_resumable(ckpt, cfg, ckpt_path)
        from lightning_dreamer.algos.base import check_saved_replays

        check_saved_replays(run_dir, ckpt.get("lightning_dreamer", {}))
    child = "LOCAL_RANK" in os.environ and os.environ.get("LOCAL_RANK") != "0"
    if not ckpt_path and os.path.exists(last) and not child:
        raise CLIError(f"{run_dir} already holds a run ({last}). Resume it with --ckpt_path last, "
                       "or choose another directory with run.dir=...")

    if args.init and ckpt_path:
        raise CLIError("--init starts a new run from given weights; --ckpt_path resumes one: give one of them")
    from lightning_dreamer.train import fit

    module, trainer = fit(cfg, ckpt_path, ckpt=ckpt, init=args.init)
    if module.stop_signal:
        if trainer.is_global_zero:
            print(f"stopped by {module.stop_signal} at {module.env_steps:,} env steps, {module.updates:,} updates; "
                  f"checkpoint saved: {last}")
            print(f"resume:     python -m lightning_dreamer fit --ckpt_path {last}")
        return 128 + int(signal.Signals.__members__.get(module.stop_signal, signal.SIGTERM))
    if trainer.is_global_zero:
        print(f"done: {module.env_steps:,} env steps, {module.updates:,} updates")
        print(f"checkpoint: {last}")
        print(f"logs:       {os.path.join(run_dir, 'logs')} (csv: {os.path.join(run_dir, 'logs', 'csv', 'metrics.csv')})")
        if cfg.run.eval_every:
            print(f"evaluation: {os.path.join(run_dir, 'eval.csv')}")
        print(f"evaluate:   python -m lightning_dreamer eval --ckpt {last} --episodes 5 --video {os.path.join(run_dir, 'eval.mp4')}")
    return 0


def _check_resumable(ckpt: dict, cfg, path: str) -> None:
    """A resume may change the budget, learning rates, logging and the like, not the algorithm or
    the task (the replay holds that task's steps). Weight shapes are checked in train.fit."""
    from lightning_dreamer.checkpoint import run_config_of

    stored = run_config_of(ckpt)
    if stored.get("algo") != cfg.algo:
        raise CLIError(f"{path} is a {stored.get('algo')} checkpoint; the config asks for {cfg.algo}")
    for key in ("suite", "name", "obs", "image_size", "grayscale"):
        before, now = stored.get("env", {}).get(key), cfg.env[key]
        if key in stored.get("env", {}) and before != now:
            raise CLIError(f"cannot resume {path} with env.{key}={now!r}: it was trained with env.{key}={before!r}; "
                           "keep the env it was trained on, or start a new run.dir")
    lanes = stored.get("env", {}).get("num_envs", 1)
    if lanes != cfg.env.num_envs:
        raise CLIError(f"cannot resume {path} with env.num_envs={cfg.env.num_envs}: its replay holds one lane per env "
                       f"of the {lanes} it was trained with; resume with env.num_envs={lanes}, or start a new run.dir")


def cmd_eval(args: argparse.Namespace, extra: list[str]) -> int:
    import numpy as np
    import torch

    from lightning_dreamer.algos.base import build_env
    from lightning_dreamer.callbacks import write_video
    from lightning_dreamer.checkpoint import load_agent
    from lightning_dreamer.loading import config_from_dict

    if extra:
        raise CLIError(f"unexpected arguments for eval: {' '.join(extra)}")
    if args.episodes < 1:
        raise CLIError(f"--episodes must be >= 1, got {args.episodes}")
    if args.video:
        if not args.video.endswith((".mp4", ".gif")):
            raise CLIError(f"--video {args.video}: the file must end in .mp4 or .gif")
        _check_run_dir(os.path.dirname(os.path.abspath(args.video)))
    module, run_config, trained = load_agent(args.ckpt)
    cfg = config_from_dict(run_config)
    torch.set_num_threads(cfg.run.threads or (os.cpu_count() or 1))
    torch.manual_seed(args.seed)
    env_cfg = cfg.env
    if args.video and cfg.env.obs == "state":
        # The agent reads the state vector; render frames beside it to record the episode.
        env_cfg = cfg.env.copy()
        env_cfg.obs = "both"
    env = build_env(env_cfg, seed=args.seed)
    if args.video and "pixels" not in env.observation_spec.keys():
        raise CLIError(f"--video: env {cfg.env.suite}:{cfg.env.name} renders no frames to record")
    returns, lengths, frames = module.evaluate(env, args.episodes, record_first=bool(args.video))
    print(f"{cfg.algo} on {cfg.env.suite}:{cfg.env.name} ({trained})")
    print(f"return over {len(returns)} episodes: {np.mean(returns):.1f} ± {np.std(returns):.1f} "
          f"(min {np.min(returns):.1f}, max {np.max(returns):.1f}, mean length {np.mean(lengths):.0f})")
    if args.video:
        print(f"video: {write_video(args.video, frames)}")
    return 0


def cmd_compare(args: argparse.Namespace, extra: list[str]) -> int:
    from lightning_dreamer import compare

    if extra:
        raise CLIError(f"unexpected arguments for compare: {' '.join(extra)}")
    if (args.budget is not None and args.budget < 1) or any(m < 1 for m in args.marks):
        raise CLIError("--budget and --marks must be positive env-step counts")
    if args.svg and not args.svg.endswith(".svg"):
        raise CLIError(f"--svg {args.svg}: the file must end in .svg")
    curves = compare.read_groups(args.runs)
    baselines = compare.parse_baselines(args.baseline or [])
    budget = args.budget or max(c.steps[-1] for c in curves)  # no budget given: the axis fits the data
    print(compare.table(curves, budget, sorted(m for m in args.marks if m < budget)))
    if args.svg:
        compare.write_atomically(args.svg, compare.svg(curves, budget, baselines, args.title))
        print(f"learning curves: {args.svg}")
    return 0


def cmd_zoo(args, extra) -> int:
    from lightning_dreamer import zoo

    if extra or args.action != "list":
        raise CLIError(f"unexpected arguments for zoo: {' '.join([args.action, *extra])} (allowed: zoo list)")
    print(zoo.table())
    return 0


def cmd_doctor(args, extra) -> int:
    from lightning_dreamer.doctor import run_checks

    if extra:
        raise CLIError(f"unexpected arguments for doctor: {' '.join(extra)}")
    return run_checks()


def cmd_algos(args, extra) -> int:
    from lightning_dreamer.registry import list_algos

    print("\n".join(list_algos()))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m lightning_dreamer", description=USAGE,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="train (or resume) an agent")
    fit.add_argument("--config", action="append", help="YAML file; repeat to overlay presets (default: the embedded small config)")
    fit.add_argument("--ckpt_path", help="resume from this checkpoint; 'last': <run.dir>/checkpoints/last.ckpt; "
                     "'auto': resume it if it exists, else start (what a requeued SLURM job does by itself)")
    fit.add_argument("--print_config", action="store_true", help="print the merged config and exit")
    fit.add_argument("--init", help="start from these weights (zoo:NAME or a checkpoint path): fine-tuning")
    ev = sub.add_parser("eval", help="play episodes with a trained checkpoint")
    ev.add_argument("--ckpt", required=True, help="a checkpoint path, or zoo:NAME (python -m lightning_dreamer zoo list)")
    ev.add_argument("--episodes", type=int, default=10)
    ev.add_argument("--video", help="write the first episode to this .mp4 or .gif")
    ev.add_argument("--seed", type=int, default=12345)
    cmp = sub.add_parser("compare", help="table and learning curves of several runs' evaluations")
    cmp.add_argument("runs", nargs="+", metavar="NAME=RUN_DIR", help="a run directory (or its eval.csv), named; repeat a name for its other seeds (mean ± std over them)")
    cmp.add_argument("--budget", type=int, help="env-step budget the table judges (default: the longest run's last evaluation)")
    cmp.add_argument("--marks", type=int, nargs="*", default=[25_000, 50_000], help="more env-step columns")
    cmp.add_argument("--baseline", action="append", metavar="NAME=RETURN", help="a dashed reference line, e.g. random=22")
    cmp.add_argument("--svg", help="write the learning curves to this SVG file")
    cmp.add_argument("--title", default="evaluation return")
    sub.add_parser("algos", help="list registered algorithms")
    sub.add_parser("doctor", help="what this machine can do, each line ok or what to do")
    zoo_parser = sub.add_parser("zoo", help="the published agents (zoo list)")
    zoo_parser.add_argument("action", nargs="?", default="list")
    from lightning_dreamer.errors import UserError

    try:
        args, extra = parser.parse_known_args(argv)
        commands = {"fit": cmd_fit, "eval": cmd_eval, "compare": cmd_compare, "algos": cmd_algos, "doctor": cmd_doctor,
                    "zoo": cmd_zoo}
        return commands[args.command](args, extra)
    except (UserError, CLIError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
