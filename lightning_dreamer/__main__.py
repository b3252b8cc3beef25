"""Command line: ``python -m lightning_dreamer {fit,eval,compare,algos} ...``

fit     [--config A.yaml [--config preset.yaml ...]] [key=value | --key value ...]
        [--trainer.OPTION VALUE ...] [--ckpt_path PATH|last] [--print_config]
eval    --ckpt PATH [--episodes N] [--video FILE.mp4|.gif] [--seed S]
compare NAME=RUN_DIR [NAME=RUN_DIR ...] [--budget N] [--marks N ...] [--baseline NAME=RETURN]
        [--svg FILE.svg]   (a table and learning curves from the runs' eval.csv)
algos   list the registered algorithms
"""

from __future__ import annotations

import argparse
import os
import sys

USAGE = __doc__
DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "default.yaml")


class CLIError(Exception):
    pass


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


def _load_checkpoint(path: str) -> dict:
    import torch

    if not os.path.isfile(path):
        raise CLIError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise CLIError(f"cannot read checkpoint {path}: it is corrupt or not a lightning_dreamer checkpoint ({type(err).__name__})") from None
    if not isinstance(ckpt, dict) or "config" not in ckpt.get("hyper_parameters", {}):
        raise CLIError(f"{path} is not a lightning_dreamer checkpoint (no config inside)")
    return ckpt


def cmd_fit(args: argparse.Namespace, extra: list[str]) -> int:
    from omegaconf import OmegaConf

    from lightning_dreamer.config import load_config

    overrides = _split_overrides(extra)
    ckpt_path = args.ckpt_path
    configs = list(args.config or [])
    validated = False  # each checkpoint file is read once here (Lightning reads it again to restore)
    if ckpt_path and ckpt_path != "last" and not configs:
        # Resume without YAML: the config travels inside the checkpoint.
        from lightning_dreamer.config import config_from_dict

        stored = _load_checkpoint(ckpt_path)["hyper_parameters"]["config"]
        validated = True
        merged = OmegaConf.merge(OmegaConf.create(stored), OmegaConf.from_dotlist(overrides))
        cfg = config_from_dict(OmegaConf.to_container(merged))
    else:
        if not configs and not ckpt_path:
            configs = [DEFAULT_CONFIG]
            print(f"no --config given: using the embedded default {DEFAULT_CONFIG}")
        cfg = load_config(configs, overrides)
    if args.print_config:
        print(OmegaConf.to_yaml(cfg, resolve=True), end="")
        return 0
    run_dir = cfg.run.dir
    last = os.path.join(run_dir, "checkpoints", "last.ckpt")
    if ckpt_path == "last":
        if not os.path.isfile(last):
            raise CLIError(f"--ckpt_path last: no checkpoint at {last} (run.dir={run_dir})")
        ckpt_path = last
    if ckpt_path and not validated:
        _load_checkpoint(ckpt_path)
    child = "LOCAL_RANK" in os.environ and os.environ.get("LOCAL_RANK") != "0"
    if not ckpt_path and os.path.exists(last) and not child:
        raise CLIError(f"{run_dir} already holds a run ({last}). Resume it with --ckpt_path last, "
                       "or choose another directory with run.dir=...")

    from lightning_dreamer.train import fit

    module, trainer = fit(cfg, ckpt_path)
    if trainer.is_global_zero:
        print(f"done: {module.env_steps:,} env steps, {module.updates:,} updates")
        print(f"checkpoint: {last}")
        print(f"logs:       {os.path.join(run_dir, 'logs')} (csv: {os.path.join(run_dir, 'logs', 'csv', 'metrics.csv')})")
        if cfg.run.eval_every:
            print(f"evaluation: {os.path.join(run_dir, 'eval.csv')}")
        print(f"evaluate:   python -m lightning_dreamer eval --ckpt {last} --episodes 5 --video {os.path.join(run_dir, 'eval.mp4')}")
    return 0


def cmd_eval(args: argparse.Namespace, extra: list[str]) -> int:
    import numpy as np
    import torch

    from lightning_dreamer.callbacks import write_video
    from lightning_dreamer.config import config_from_dict
    from lightning_dreamer.envs import make_env
    from lightning_dreamer.registry import get_algo

    if extra:
        raise CLIError(f"unexpected arguments for eval: {' '.join(extra)}")
    if args.episodes < 1:
        raise CLIError(f"--episodes must be >= 1, got {args.episodes}")
    ckpt = _load_checkpoint(args.ckpt)
    cfg = config_from_dict(ckpt["hyper_parameters"]["config"])
    torch.set_num_threads(cfg.run.threads or (os.cpu_count() or 1))
    torch.manual_seed(args.seed)
    module = get_algo(cfg.algo)(ckpt["hyper_parameters"]["config"])
    module.load_state_dict(ckpt["state_dict"])
    env = make_env(cfg.env, seed=args.seed)
    returns, lengths, frames = module.evaluate(env, args.episodes, record_first=bool(args.video))
    print(f"{cfg.algo} on {cfg.env.suite}:{cfg.env.name} ({ckpt.get('lightning_dreamer', {}).get('updates', '?')} updates)")
    print(f"return over {len(returns)} episodes: {np.mean(returns):.1f} ± {np.std(returns):.1f} "
          f"(min {np.min(returns):.1f}, max {np.max(returns):.1f}, mean length {np.mean(lengths):.0f})")
    if args.video:
        if not frames:
            raise CLIError("this agent has no pixel observations to record (env.obs=state)")
        print(f"video: {write_video(args.video, frames)}")
    return 0


def cmd_compare(args: argparse.Namespace, extra: list[str]) -> int:
    from lightning_dreamer import compare

    if extra:
        raise CLIError(f"unexpected arguments for compare: {' '.join(extra)}")
    if args.budget < 1 or any(m < 1 for m in args.marks):
        raise CLIError("--budget and --marks must be positive env-step counts")
    curves = [compare.read_curve(name, path) for name, path in compare.parse_runs(args.runs)]
    baselines = compare.parse_baselines(args.baseline or [])
    print(compare.table(curves, args.budget, sorted(m for m in args.marks if m < args.budget)))
    if args.svg:
        compare.write_atomically(args.svg, compare.svg(curves, args.budget, baselines, args.title))
        print(f"learning curves: {args.svg}")
    return 0


def cmd_algos(args, extra) -> int:
    from lightning_dreamer.registry import list_algos

    print("\n".join(list_algos()))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lightning_dreamer", description=USAGE,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="train (or resume) an agent")
    fit.add_argument("--config", action="append", help="YAML file; repeat to overlay presets (default: the embedded small config)")
    fit.add_argument("--ckpt_path", help="resume from this checkpoint, or 'last' for <run.dir>/checkpoints/last.ckpt")
    fit.add_argument("--print_config", action="store_true", help="print the merged config and exit")
    ev = sub.add_parser("eval", help="play episodes with a trained checkpoint")
    ev.add_argument("--ckpt", required=True)
    ev.add_argument("--episodes", type=int, default=10)
    ev.add_argument("--video", help="write the first episode to this .mp4 or .gif")
    ev.add_argument("--seed", type=int, default=12345)
    cmp = sub.add_parser("compare", help="table and learning curves of several runs' evaluations")
    cmp.add_argument("runs", nargs="+", metavar="NAME=RUN_DIR", help="a run directory (or its eval.csv), named")
    cmp.add_argument("--budget", type=int, default=100_000, help="env-step budget the table judges (default 100000)")
    cmp.add_argument("--marks", type=int, nargs="*", default=[25_000, 50_000], help="more env-step columns")
    cmp.add_argument("--baseline", action="append", metavar="NAME=RETURN", help="a dashed reference line, e.g. random=22")
    cmp.add_argument("--svg", help="write the learning curves to this SVG file")
    cmp.add_argument("--title", default="evaluation return")
    sub.add_parser("algos", help="list registered algorithms")
    args, extra = parser.parse_known_args(argv)
    from lightning_dreamer.config import UserError

    try:
        return {"fit": cmd_fit, "eval": cmd_eval, "compare": cmd_compare, "algos": cmd_algos}[args.command](args, extra)
    except (UserError, CLIError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
