"""Compare recipe variants over several training seeds (by hand, not in CI): every (variant, seed)
run trains in the background, detached, so the sweep outlives the command that started it (a lent GPU
machine's calls end after 10 minutes; a shell session may close).

    python bench/sweep.py start v1_pixels --seeds 10 11 12 13 --steps 25000 --jobs 12 \\
        --variant recipe= --variant ratio256=replay.train_ratio=256 --variant reward10=model.loss_scales.reward=10
    python bench/sweep.py wait --limit 540        # progress of every run; returns once all have ended
    python bench/sweep.py report                  # per variant: mean ± std over its seeds, and each seed

The recipe is a name of ``bench/learn.py`` (its configs and overrides) or one or more config files
(``configs/tiny_point.yaml``). A variant is ``label=key=value,key=value`` (``label=`` for the recipe as
it is). Arguments after the options are overrides for every run (``run.threads=1``). Runs live in
``--root``/<label>/seed<S>; starting again resumes each unfinished run from its checkpoint. ``--jobs``
runs at most that many at once (one per core on a CPU; all of them on a GPU machine).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

from learn import BENCHMARKS, fit_command, resuming  # noqa: E402  (the recipes, how a run starts)

PLAN = "sweep.json"


def parse_variant(text: str) -> tuple[str, list[str]]:
    label, sep, rest = text.partition("=")
    if not sep or not label or "/" in label:
        raise SystemExit(f"--variant {text!r}: write label=key=value,key=value (label= for the recipe as it is)")
    overrides = [o for o in rest.split(",") if o]
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise SystemExit(f"--variant {text!r}: {bad[0]!r} is not key=value")
    return label, overrides


def plan_runs(args, extra: list[str]) -> list[dict]:
    if args.recipe in BENCHMARKS:
        configs, overrides = BENCHMARKS[args.recipe][0], list(BENCHMARKS[args.recipe][1])
    else:
        configs, overrides = args.recipe.split(","), []
        missing = [c for c in configs if not os.path.exists(os.path.join(ROOT, c))]
        if missing:
            raise SystemExit(f"recipe {args.recipe!r}: not a bench/learn.py name ({', '.join(sorted(BENCHMARKS))}) "
                             f"and no config file {missing[0]}")
    variants = [parse_variant(v) for v in args.variant] or [("recipe", [])]
    labels = [label for label, _ in variants]
    if len(set(labels)) < len(labels):
        raise SystemExit(f"--variant labels must differ (got {', '.join(labels)})")
    runs = []
    for label, changes in variants:
        for seed in args.seeds:
            run_dir = os.path.join(os.path.abspath(args.root), label, f"seed{seed}")
            steps = [f"run.total_env_steps={args.steps}"] if args.steps else []
            cmd = fit_command(configs, overrides + changes + [f"run.seed={seed}", f"run.dir={run_dir}",
                                                              "--trainer.enable_progress_bar", "false", *steps, *extra])
            runs.append({"label": label, "seed": seed, "dir": run_dir, "cmd": cmd})
    return runs


def supervisor_alive(root: str) -> bool:
    """Whether the supervisor of the sweep under ``root`` still runs (two would train the same runs):
    its recorded process exists and is a supervisor (not a later process that got its number)."""
    try:
        pid = int(open(os.path.join(root, "supervisor.pid")).read())
        command = open(f"/proc/{pid}/cmdline", "rb").read()
    except (OSError, ValueError):
        return False
    return b"_supervise" in command


def supervise(root: str, jobs: int) -> None:
    """Run the plan's runs, at most ``jobs`` at once; each run's exit code goes to <dir>.rc."""
    runs = json.load(open(os.path.join(root, PLAN)))["runs"]
    waiting, active = list(runs), []
    while waiting or active:
        while waiting and len(active) < jobs:
            run = waiting.pop(0)
            cmd = resuming(run["cmd"], run["dir"])
            os.makedirs(os.path.dirname(run["dir"]), exist_ok=True)
            log = open(run["dir"] + ".log", "a")
            active.append((run, subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)))
        time.sleep(2)
        for run, proc in list(active):
            if proc.poll() is not None:
                with open(run["dir"] + ".rc", "w") as f:
                    f.write(f"{proc.returncode}\n")
                active.remove((run, proc))


def progress(root: str, show: bool = True) -> bool:
    """True when every run has ended (or the supervisor is gone); ``show``: one line per run."""
    from lightning_dreamer.compare import read_curve
    from lightning_dreamer.errors import UserError

    ended, alive = True, supervisor_alive(root)
    for run in json.load(open(os.path.join(root, PLAN)))["runs"]:
        rc = open(run["dir"] + ".rc").read().strip() if os.path.exists(run["dir"] + ".rc") else None
        ended &= rc is not None or not alive  # without its supervisor nothing more will run
        if not show:
            continue
        try:
            curve = read_curve(run["label"], run["dir"])
            last = f"{curve.returns[-1]:.1f} at {curve.steps[-1]:,} env steps"
        except UserError:
            last = "no evaluation yet"
        state = f"exit {rc}" if rc is not None else "running" if alive else "stopped (its supervisor is gone; start again to resume)"
        print(f"{run['label']} seed {run['seed']}: {state}, {last}", flush=True)
    return ended


def report(root: str, marks: list[int]) -> None:
    from lightning_dreamer.compare import at, group, read_curve, table
    from lightning_dreamer.errors import UserError

    plan = json.load(open(os.path.join(root, PLAN)))
    curves, seeds_lines = [], []
    for label in dict.fromkeys(run["label"] for run in plan["runs"]):
        runs, done = [r for r in plan["runs"] if r["label"] == label], []
        for run in runs:
            try:
                done.append((run["seed"], read_curve(f"{label} seed {run['seed']}", run["dir"])))
            except UserError:
                pass
        if not done:
            seeds_lines.append(f"{label}: no evaluation yet")
            continue
        curves.append(group(label, [c for _, c in done]))
        budget = plan["steps"] or max(c.steps[-1] for _, c in done)
        finals = ", ".join(f"seed {s}: {found[0]:.1f}" if (found := at(c, budget)) else f"seed {s}: – (at {c.steps[-1]:,})"
                           for s, c in done)
        seeds_lines.append(f"{label} at {budget:,}: {finals}")
    if curves:
        budget = plan["steps"] or max(c.steps[-1] for c in curves)
        print(table(curves, budget, [m for m in marks if m < budget]))
    print("\n".join(seeds_lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("start")
    s.add_argument("recipe", help="a bench/learn.py name, or config files joined by commas")
    s.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    s.add_argument("--variant", action="append", default=[], help="label=key=value,key=value (repeatable)")
    s.add_argument("--steps", type=int, default=0, help="env steps per run (default: the recipe's budget)")
    s.add_argument("--jobs", type=int, default=1, help="runs at once")
    s.add_argument("--root", default=os.path.join(ROOT, "runs", "sweep"))
    for name in ("wait", "report", "_supervise"):
        p = sub.add_parser(name)
        p.add_argument("--root", default=os.path.join(ROOT, "runs", "sweep"))
        p.add_argument("--limit", type=float, default=540.0, help="wait: seconds at most")
        p.add_argument("--marks", type=int, nargs="+", default=[10_000, 25_000, 50_000], help="report: columns")
        p.add_argument("--jobs", type=int, default=1)
    args, extra = parser.parse_known_args()
    if args.command != "start" and extra:
        raise SystemExit(f"{args.command} takes no overrides (got {' '.join(extra)})")
    root = os.path.abspath(args.root)
    if args.command == "start":
        if args.jobs < 1:
            raise SystemExit(f"--jobs must be at least 1 (got {args.jobs})")
        runs = plan_runs(args, extra)
        if supervisor_alive(root):
            raise SystemExit(f"a sweep is still running under {root} (see python bench/sweep.py wait --root {root}); "
                             "start again once it has ended")
        os.makedirs(root, exist_ok=True)
        from lightning_dreamer.compare import write_atomically

        write_atomically(os.path.join(root, PLAN), json.dumps({"steps": args.steps, "runs": runs}, indent=1) + "\n")
        for run in runs:  # a restarted sweep waits for its runs again
            if os.path.exists(run["dir"] + ".rc"):
                os.remove(run["dir"] + ".rc")
        log = open(os.path.join(root, "supervisor.log"), "a")
        supervisor = subprocess.Popen([sys.executable, os.path.abspath(__file__), "_supervise", "--root", root, "--jobs", str(args.jobs)],
                                      cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        write_atomically(os.path.join(root, "supervisor.pid"), f"{supervisor.pid}\n")
        print(f"started {len(runs)} runs ({args.jobs} at once) under {root}; progress: python bench/sweep.py wait --root {root}")
        return 0
    if not os.path.exists(os.path.join(root, PLAN)):
        raise SystemExit(f"no sweep under {root} (python bench/sweep.py start ... --root {root} makes one)")
    if args.command == "_supervise":
        supervise(root, args.jobs)
        return 0
    if args.command == "wait":
        start = time.time()
        while not progress(root, show=False) and time.time() - start < args.limit:
            time.sleep(10)
        progress(root)
        return 0
    report(root, args.marks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
