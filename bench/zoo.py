"""Build and verify the zoo's entries (by hand, not in CI): train, evaluate, card, publish.

    python bench/zoo.py build dreamer_v2/dmc_cartpole_swingup            # 3 seeds, resumable, then card + publish
    python bench/zoo.py build dreamer_v1/dmc_cartpole_swingup_state --seeds 0 1 2 3
    python bench/zoo.py build dreamer_v2/dmc_cartpole_swingup_state --seeds 1 --train-only   # one seed, in parallel with others
    python bench/zoo.py status                                           # how far each seed under --root has trained
    python bench/zoo.py verify                                           # re-evaluate every entry against its card
    python bench/zoo.py compare --readme                                 # the README's comparison: table + curves
    python bench/zoo.py build dreamer_v2/tiny_point --seeds 0 1          # a seconds-long smoke run of this script
                                                                         # (publish it only into $LIGHTNING_DREAMER_ZOO)

``build`` trains each seed with the recipe of ``bench/learn.py`` (runs in ``--root``/NAME/seed<S>;
running it again resumes them), evaluates its final checkpoint with the deterministic policy on
``--episodes`` episodes of evaluation seeds no training run uses, and records the finished seed in
the repository (zoo/NAME/seeds/seed<S>.json, .safetensors, .csv: score, weights, curve). Commit a
record when it appears: a recorded seed is done, and later builds use the record instead of the run
folder, so runs on a machine that is gone cost nothing that finished. With every seed recorded
(``--train-only`` stops before this), it writes the card (zoo/NAME/README.md: score per seed, mean ±
std over seeds, learning curves, wall-clock, the machines and precisions each seed trained on, commits,
the command, SHA-256) with each seed's evaluations beside it (zoo/NAME/eval_seed<S>.csv; result.json:
the held-out scores, machines and precisions, published seed). If the entry's floor holds (the mean, and every seed), the weights of the median
seed are published (checkpoints/, zoo/index.json); otherwise the card says so, nothing is published
and an entry an earlier build published is taken out of the index (exit 1). Either way the seeds' own
weight files then leave the tree (git history keeps them: the zoo stays small). ``status`` prints every recorded
seed, and for every seed folder under ``--root`` the env steps and updates of its checkpoint
against its budget, its last evaluation and the wall-clock so far. ``verify`` re-plays every entry on its card's evaluation seed and fails if a score leaves the
card's interval. ``compare`` reads those evaluation files for every
algorithm on one benchmark and prints the comparison table (mean ± std over seeds at 25k / 50k / 100k
env steps, best, wall-clock, hardware) and draws zoo/<benchmark>.svg; ``--readme`` also puts both in
README.md between that benchmark's comparison markers (``readme_markers``).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

from learn import BENCHMARKS, fit_command, resuming  # noqa: E402  (the recipes, how a run starts)

MARKS = (25_000, 50_000)  # the comparison's columns, before the 100k budget
BUDGET = 100_000
EVAL_SEED = 7_000_000  # evaluation episodes: seeds no training run uses (runs: seed + 1000 rank; their evals: seed + 10**6)
# Random policies on cartpole swingup, 50 episodes on EVAL_SEED (bench/random_baseline.py, 2026-11-24):
# i.i.d. uniform actions 47.0 ± 36.3 (the authors' score files give 22); actions held 10 agent steps, the
# exploration the zoo's recipes prefill with, 180.6 ± 43.2. The comparison's curves draw both lines.
CARTPOLE_BASELINES = {"random": 22.0, "held random": 180.6}
HELD_RANDOM = "random actions held 10 agent steps 180.6 ± 43.2 (bench/random_baseline.py)"
# name -> (recipe in bench/learn.py, floor of the mean over seeds, floor of every seed, anchor text for the card)
ENTRIES = {
    "dreamer_v2/dmc_cartpole_swingup": ("v2_pixels", 300, 150, f"DreamerV2 438 ± 123 at 100k (authors' scores); {HELD_RANDOM}"),
    "dreamer_v1/dmc_cartpole_swingup": ("v1_pixels", 150, 100, f"DreamerV1 136 ± 70 at 100k (authors' scores); {HELD_RANDOM}"),
    "world_models/dmc_cartpole_swingup": ("wm_pixels", 200, 150, f"random 22 (authors' score files); {HELD_RANDOM}"),
    "dreamer_v2/dmc_cartpole_swingup_state": ("v2_state", 500, None, "from the state vector"),
    "dreamer_v1/dmc_cartpole_swingup_state": ("v1_state", 500, None, "from the state vector"),
    "dreamer_v2/tiny_point": (None, None, None, "a smoke run of bench/zoo.py, not a result"),
}
TINY = (["configs/tiny_point.yaml"], ["run.total_env_steps=200", "run.eval_every=100"])
PAPERS = {
    "dreamer_v1": "Hafner et al. 2020, Dream to Control: Learning Behaviors by Latent Imagination (ICLR 2020, arXiv:1912.01603)",
    "dreamer_v2": "Hafner et al. 2021, Mastering Atari with Discrete World Models (ICLR 2021, arXiv:2010.02193)",
    "world_models": "Ha & Schmidhuber 2018, Recurrent World Models Facilitate Policy Evolution (NeurIPS 2018, arXiv:1803.10122)",
}


def recipe(name: str) -> tuple[list[str], list[str]]:
    key = ENTRIES[name][0]
    return (TINY if key is None else BENCHMARKS[key][:2])


def seed_fit(name: str, seed: int, root: str, extra: list[str]) -> tuple[str, list[str]]:
    """The run folder of one seed and its fit command (not yet told to resume)."""
    configs, overrides = recipe(name)
    run_dir = os.path.join(root, name, f"seed{seed}")
    return run_dir, fit_command(configs, overrides + [f"run.seed={seed}", f"run.dir={run_dir}",
                                                      "--trainer.enable_progress_bar", "false", *extra])


def train(name: str, seed: int, run_dir: str, command: list[str]) -> None:
    cmd = resuming(command, run_dir)
    print(" ".join(cmd), flush=True)
    code = subprocess.run(cmd, cwd=ROOT).returncode
    if code:  # the run printed why; 128 + N: stopped by signal N, its checkpoint saved
        how = f"stopped by signal {code - 128} (saved; run the same command again to resume)" if code > 128 else f"failed (exit {code})"
        raise SystemExit(f"{name} seed {seed}: training {how}")


def evaluate(agent, config: dict, episodes: int) -> tuple[float, float]:
    import numpy as np
    import torch

    from lightning_dreamer.algos.base import build_env
    from lightning_dreamer.loading import config_from_dict

    torch.manual_seed(EVAL_SEED)
    env = build_env(config_from_dict(config).env, seed=EVAL_SEED)
    returns, _, _ = agent.evaluate(env, episodes)
    env.close()
    return float(np.mean(returns)), float(np.std(returns))


def trained_on(ckpt: dict) -> list[str] | None:
    """Where and how a run trained: one "machine, precision" per distinct pair over its fit segments
    (None for a checkpoint written before the agent kept its segments)."""
    segments = (ckpt.get("lightning_dreamer") or {}).get("segments")
    return list(dict.fromkeys(f"{s['machine']}, {s['precision']}" for s in segments)) if segments else None


def machines(rec: dict) -> list[str]:
    """A record's training machines and precisions, or, for a record without them, the machine that
    evaluated it."""
    return rec.get("trained_on") or [f"{rec['hardware']} (precision not recorded)"]


def environment(env: dict) -> str:
    """One line for the card: which environment, which observation, which action repeat."""
    size = env.get("image_size", 64)
    obs = {"pixels": f"{size}x{size} pixels", "state": "the state vector",
           "both": f"{size}x{size} pixels and the state vector"}.get(str(env.get("obs")), str(env.get("obs")))
    return f"{env.get('suite')} `{env.get('name')}` from {obs}, action repeat {env.get('action_repeat', 1)}"


def seed_command(name: str, command: list[str]) -> str:
    """A seed's fit command as anyone would type it: the seed and the run folder (under the default
    --root) as placeholders, paths relative to the repository, no resumption flag."""
    if command[-2:] == ["--ckpt_path", "last"]:  # the command of a fresh run, not of its resumption
        command = command[:-2]
    words = ["python"]
    for word in command[1:]:
        if word.startswith("run.seed="):
            word = "run.seed=<S>"
        elif word.startswith("run.dir="):
            word = f"run.dir=runs/zoo/{name}/seed<S>"
        elif word.startswith(ROOT):
            word = os.path.relpath(word, ROOT)
        words.append(word)
    return " ".join(words)


def without_threads(command: str) -> str:
    """A seed command less its thread count: how many cores a machine lends a run is not part of the
    recipe (the records keep the command as run; a seed may resume with other threads)."""
    return " ".join(word for word in command.split() if not word.startswith("run.threads="))


def commit() -> str:
    """The project's commit (a copy of the tree without .git, such as a GPU machine's, is told it by $ZOO_COMMIT)."""
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip() \
        or os.environ.get("ZOO_COMMIT", "?")


def seed_files(name: str, seed: int) -> tuple[str, str, str]:
    """Where a finished seed is recorded, in the repository: zoo/NAME/seeds/seed<S>.json (its held-out
    score, counters, machine, commit, command and run config), .safetensors (its weights) and .csv
    (its evaluations during training). Committed as soon as the seed finishes, a record stands for
    the seed: a later build uses it instead of the run folder, so a lost machine costs only the seeds
    still training."""
    import lightning_dreamer as ld

    stem = os.path.join(ld.zoo.root(), "zoo", name, "seeds", f"seed{seed}")
    return stem + ".json", stem + ".safetensors", stem + ".csv"


def record(name: str, seed: int, run_dir: str, command: list[str], episodes: int) -> dict:
    """Evaluate a finished seed on the held-out protocol and write its record (every file atomically)."""
    import lightning_dreamer as ld
    from lightning_dreamer.checkpoint import agent_from_checkpoint, env_steps_of, read_checkpoint, run_config_of
    from lightning_dreamer.compare import read_curve, write_atomically
    from lightning_dreamer.hardware import machine

    ckpt = read_checkpoint(os.path.join(run_dir, "checkpoints", "last.ckpt"))
    agent, config = agent_from_checkpoint(ckpt), run_config_of(ckpt)
    steps, budget = env_steps_of(ckpt), config["run"]["total_env_steps"]
    if steps < budget:
        raise SystemExit(f"{name} seed {seed}: its checkpoint is at {steps:,} of {budget:,} env steps; train it to the end first")
    mean, std = evaluate(agent, config, episodes)
    json_path, weights, csv_path = seed_files(name, seed)
    digest = ld.zoo.save_weights(agent, weights)
    with open(os.path.join(run_dir, "eval.csv")) as f:
        write_atomically(csv_path, f.read())
    rec = {"seed": seed, "score": [mean, std], "episodes": episodes, "eval_seed": EVAL_SEED, "env_steps": steps,
           "updates": (ckpt.get("lightning_dreamer") or {}).get("updates"), "wall_s": read_curve(f"seed {seed}", run_dir).wall_s,
           "hardware": machine(), "trained_on": trained_on(ckpt), "commit": commit(), "command": seed_command(name, command),
           "sha256": digest, "config": config}
    write_atomically(json_path, json.dumps(rec, indent=1) + "\n")
    print(f"{name} seed {seed}: {mean:.1f} ± {std:.1f}, recorded in {os.path.relpath(json_path, ld.zoo.root())} "
          f"(commit the seed's three files)", flush=True)
    return rec


def recorded(name: str, seed: int, command: list[str], episodes: int) -> dict | None:
    """The seed's record, if it has one made by this command and evaluation; None if it has none."""
    json_path = seed_files(name, seed)[0]
    if not os.path.exists(json_path):
        return None
    with open(json_path) as f:
        rec = json.load(f)
    now = seed_command(name, command)
    if (without_threads(rec["command"]), rec["episodes"]) != (without_threads(now), episodes):
        raise SystemExit(f"{name} seed {seed} is recorded as trained by `{rec['command']}` and evaluated on {rec['episodes']} "
                         f"episodes, not by `{now}` on {episodes}: give the same arguments, or delete "
                         f"zoo/{name}/seeds/seed{seed}.* to train it again")
    return rec


def recorded_agent(name: str, rec: dict):
    """A record's agent, from its weights file or (once published and the seed's file removed) the
    entry's, whichever has the record's SHA-256."""
    import lightning_dreamer as ld

    weights = seed_files(name, rec["seed"])[1]
    published = os.path.join(ld.zoo.root(), ld.zoo.entries().get(name, {}).get("weights", "-"))
    for path in (weights, published):
        if os.path.exists(path) and ld.zoo.sha256(path) == rec["sha256"]:
            return ld.zoo.agent_from_weights(path, name.split("/")[0])
    stem = f"zoo/{name}/seeds/seed{rec['seed']}"
    raise SystemExit(f"{name} seed {rec['seed']}: no weights file has its recorded SHA-256 {rec['sha256'][:16]}...; restore "
                     f"{stem}.safetensors from git history (`git log -- {stem}.safetensors`) or delete {stem}.* to train it again")


def card(name: str, records: list[dict], published: int | None, sha: str | None, svg: str, extra: tuple[str, ...] = ()) -> str:
    recipe_key, floor_mean, floor_each, anchor = ENTRIES[name]
    seeds, episodes = [r["seed"] for r in records], records[0]["episodes"]
    means = [r["score"][0] for r in records]
    mean, std = statistics.mean(means), (statistics.stdev(means) if len(means) > 1 else 0.0)
    algo = name.split("/")[0]
    rows = "\n".join(f"| {r['seed']} | {r['score'][0]:.1f} ± {r['score'][1]:.1f} | {'; '.join(machines(r))} "
                     f"| {'these weights' if r['seed'] == published else ''} |" for r in records)
    verdict = ("published" if published is not None else "**below the floor: not published**")
    floors = ", ".join(text for text, value in ((f"floor: mean ≥ {floor_mean}", floor_mean),
                                                (f"every seed ≥ {floor_each}", floor_each)) if value is not None) or "no floor"
    trained = f"{max(r['env_steps'] for r in records):,} env steps per seed"
    if None not in (updates := [r["updates"] for r in records]):
        trained += f" ({', '.join(f'{u:,}' for u in updates)} updates)"
    wall = sum(r["wall_s"] for r in records)
    where = " and ".join(dict.fromkeys(m for r in records for m in machines(r)))
    commits = ", ".join(f"`{c}`" for c in dict.fromkeys(r["commit"] for r in records))
    return f"""# {name}

Algorithm `{algo}`: {PAPERS.get(algo, "?")}.
Environment: {environment(records[0]["config"].get("env") or {})}; {trained}.
Trained by the recipe `{f"bench/learn.py {recipe_key}" if recipe_key else "configs/tiny_point.yaml"}` (its departures from
the paper are written there).

| training seed | return ({episodes} episodes, deterministic policy, evaluation seed {EVAL_SEED}) | trained on (machine, precision) | published |
|---|---|---|---|
{rows}

**Mean over {len(seeds)} seeds: {mean:.1f} ± {std:.1f}** ({floors}; {verdict}).
Evaluation: {episodes} episodes per training seed on the fixed evaluation seed {EVAL_SEED}, which no training run
used; the deterministic policy. Anchor: {anchor}.

Learning curves: `{svg}`, from each seed's evaluations during training (`eval_seed<S>.csv` here;
`python -m lightning_dreamer compare` reads them). Wall-clock {wall / 3600:.2f} h over all seeds on
{where}. Commit {commits} (the seeds' records: `seeds/`).

Reproduce: `python bench/zoo.py build {without_threads(" ".join([name, "--seeds", *map(str, seeds), *extra]))}`, which runs for each seed S:
`{records[0]["command"]}`

{f"Weights: `checkpoints/{name}.safetensors`, the median seed's ({published}), SHA-256 `{sha}`." if published is not None
 else f"Weights: not published (below the floor). Each seed's weights left the tree with this card; git history keeps them "
      f"(`git log -- zoo/{name}/seeds`), under the SHA-256 of its record."}
"""


def build(args, extra) -> int:
    import lightning_dreamer as ld
    from lightning_dreamer.compare import read_curve, svg, write_atomically

    name = args.name
    if ENTRIES[name][0] is None and not os.environ.get("LIGHTNING_DREAMER_ZOO"):
        raise SystemExit(f"{name} is a smoke run: set LIGHTNING_DREAMER_ZOO to publish it outside the repository")
    records = []
    for seed in args.seeds:  # a recorded seed is done; any other trains (or resumes) and is recorded
        run_dir, command = seed_fit(name, seed, args.root, extra)
        rec = recorded(name, seed, command, args.episodes)
        if rec is None:
            train(name, seed, run_dir, command)
            rec = record(name, seed, run_dir, command, args.episodes)
        else:
            print(f"{name} seed {seed}: recorded ({rec['score'][0]:.1f} ± {rec['score'][1]:.1f}, commit {rec['commit'][:10]})", flush=True)
        records.append(rec)
    if args.train_only:  # seeds can train in parallel processes; the card waits for all of them
        return 0
    _, floor_mean, floor_each, _ = ENTRIES[name]
    means = [r["score"][0] for r in records]
    met = (floor_mean is None or statistics.mean(means) >= floor_mean) and (floor_each is None or min(means) >= floor_each)
    median = sorted(range(len(means)), key=lambda i: means[i])[len(means) // 2]
    agent = recorded_agent(name, records[median]) if met else None  # before anything is written
    base = ld.zoo.root()
    svg_rel = os.path.join("zoo", name, "curves.svg")
    folder = os.path.join(base, "zoo", name)
    curves = [read_curve(f"seed {r['seed']}", seed_files(name, r["seed"])[2]) for r in records]
    steps = max(r["env_steps"] for r in records)
    write_atomically(os.path.join(base, svg_rel), svg(curves, steps, {}, f"{name}: evaluation return per training seed"))
    for old in glob.glob(os.path.join(folder, "eval_seed*.csv")):
        os.remove(old)
    for rec in records:  # the card's curves beside it (compare reads them)
        with open(seed_files(name, rec["seed"])[2]) as f:
            write_atomically(os.path.join(folder, f"eval_seed{rec['seed']}.csv"), f.read())
    where = " and ".join(dict.fromkeys(m for r in records for m in machines(r)))
    result = {"seeds": args.seeds, "scores": [r["score"] for r in records], "episodes": args.episodes, "eval_seed": EVAL_SEED,
              "env_steps": steps, "hardware": where, "published_seed": args.seeds[median] if met else None}
    write_atomically(os.path.join(folder, "result.json"), json.dumps(result, indent=1) + "\n")
    sha = None
    if met:
        rec = records[median]
        summary = {"hardware": "; ".join(machines(rec)), "score": means[median], "score_std": rec["score"][1], "seeds_mean": statistics.mean(means),
                   "seeds_std": statistics.stdev(means) if len(means) > 1 else 0.0, "env_steps": steps,
                   "training_seed": rec["seed"], "eval_seed": EVAL_SEED, "eval_episodes": args.episodes}
        ld.zoo.export(agent, rec["config"], name, summary)
        sha = ld.zoo.entry(name)["sha256"]
    text = card(name, records, args.seeds[median] if met else None, sha, svg_rel, tuple(extra))
    write_atomically(os.path.join(base, "zoo", name, "README.md"), text)
    print(text)
    if not met and ld.zoo.withdraw(name):  # an earlier build published it: the index must agree with the card
        print(f"{name}: taken out of zoo/index.json and its weights deleted (below the floor)", flush=True)
    for r in records:  # the seeds' own weight files leave the tree, published or not (git history keeps them)
        weights = seed_files(name, r["seed"])[1]
        if os.path.exists(weights):
            os.remove(weights)
    return 0 if met else 1


def status(args) -> int:
    """One line per seed folder under --root: how far it trained (from its checkpoint), its last
    evaluation and its wall-clock (from its eval.csv)."""
    from lightning_dreamer.checkpoint import env_steps_of, read_checkpoint, run_config_of
    from lightning_dreamer.compare import read_curve
    from lightning_dreamer.errors import UserError

    found = 0
    for name in sorted(ENTRIES):
        for path in sorted(glob.glob(os.path.join(os.path.dirname(seed_files(name, 0)[0]), "seed*.json"))):
            found += 1
            with open(path) as f:
                rec = json.load(f)
            print(f"{name} seed{rec['seed']}: recorded, {rec['score'][0]:.1f} ± {rec['score'][1]:.1f} at {rec['env_steps']:,} env steps "
                  f"({rec['wall_s'] / 3600:.2f} h, commit {rec['commit'][:10]})")
        folders = glob.glob(os.path.join(args.root, name, "seed*"))
        for folder in sorted(folders, key=lambda f: int(re.sub(r"\D", "", os.path.basename(f)) or -1)):
            found += 1
            where = f"{name} {os.path.basename(folder)}"
            path = os.path.join(folder, "checkpoints", "last.ckpt")
            if not os.path.exists(path):
                print(f"{where}: no checkpoint yet")
                continue
            ckpt = read_checkpoint(path)
            steps, budget = env_steps_of(ckpt), run_config_of(ckpt)["run"]["total_env_steps"]
            counters = ckpt.get("lightning_dreamer") or {}
            try:
                curve = read_curve(name, folder)
                last = (f"last evaluation {curve.returns[-1]:.1f} at {curve.steps[-1]:,}, "
                        f"{curve.wall_s / 3600:.2f} h in {curve.segments} segment(s)")
            except UserError:
                last = "no evaluation yet"
            print(f"{where}: checkpoint at {steps:,} of {budget:,} env steps, {counters.get('updates', 0):,} updates, {last}, "
                  f"{'done' if steps >= budget else 'resumable'}")
    if not found:
        print(f"no seed recorded and no seed folder under {args.root} (bench/zoo.py build NAME --root {args.root} makes them)")
    return 0


def verify(args) -> int:
    import lightning_dreamer as ld

    bad = 0
    for name, info in ld.zoo.entries().items():
        mean, _ = evaluate(ld.zoo.load(name), ld.zoo.run_config(name), info.get("eval_episodes", args.episodes))
        ok = abs(mean - info["score"]) <= max(1.0, 0.02 * abs(info["score"]))
        bad += not ok
        print(f"{'ok ' if ok else 'BAD'} {name}: {mean:.1f} (card {info['score']:.1f})", flush=True)
    return 1 if bad else 0


def readme_markers(benchmark: str) -> tuple[str, str]:
    """The lines around a benchmark's comparison in README.md (one section per benchmark)."""
    return (f"<!-- comparison of {benchmark}: written by `python bench/zoo.py compare --benchmark {benchmark} --readme` -->",
            f"<!-- end of the comparison of {benchmark} -->")


def comparison(benchmark: str) -> tuple[str, str]:
    """The markdown table and SVG of every algorithm carded on ``benchmark``, from zoo/*/<benchmark>/."""
    import lightning_dreamer as ld
    from lightning_dreamer.compare import group, read_curve, svg, table

    base, curves, held_out = ld.zoo.root(), [], []
    for algo in ("dreamer_v2", "dreamer_v1", "world_models"):
        folder = os.path.join(base, "zoo", algo, benchmark)
        files = sorted(glob.glob(os.path.join(folder, "eval_seed*.csv")), key=lambda f: int(re.findall(r"\d+", os.path.basename(f))[0]))
        if not files:
            continue
        curve = group(algo, [read_curve(f"{algo} {os.path.basename(f)}", f) for f in files])
        result = json.load(open(os.path.join(folder, "result.json")))
        curve.hardware = result["hardware"]
        means = [m for m, _ in result["scores"]]
        held_out.append(f"{statistics.mean(means):.1f} ± {statistics.stdev(means) if len(means) > 1 else 0.0:.1f}"
                        f"{'' if result['published_seed'] is not None else ' (below floor)'}")
        curves.append(curve)
    if not curves:
        raise SystemExit(f"no zoo entry on {benchmark} has its evaluations (zoo/<algorithm>/{benchmark}/eval_seed*.csv): "
                         f"build them first (python bench/zoo.py build <algorithm>/{benchmark})")
    lines = table(curves, BUDGET, list(MARKS)).splitlines()
    head = f"final, {result['episodes']} held-out episodes per seed"
    text = "\n".join([lines[0] + f" {head} |", lines[1] + "---|"] + [l + f" {h} |" for l, h in zip(lines[2:], held_out)])
    picture = svg(curves, BUDGET, CARTPOLE_BASELINES if benchmark.startswith("dmc_cartpole_swingup") else {},
                  f"{benchmark}: evaluation return, mean ± std over training seeds")
    return text, picture


def compare(args) -> int:
    import lightning_dreamer as ld
    from lightning_dreamer.compare import write_atomically

    text, picture = comparison(args.benchmark)
    svg_rel = os.path.join("zoo", f"{args.benchmark}.svg")
    write_atomically(os.path.join(ld.zoo.root(), svg_rel), picture)
    print(text)
    print(f"learning curves: {svg_rel}")
    if args.readme:
        path = os.path.join(ld.zoo.root(), "README.md")
        readme = open(path).read() if os.path.exists(path) else ""
        start, end = readme_markers(args.benchmark)
        if start not in readme or end not in readme:
            raise SystemExit(f"{path} lacks the comparison markers:\n{start}\n{end}")
        section = f"{start}\n{text}\n\n![learning curves]({svg_rel})\n{end}"
        head, rest = readme.split(start, 1)
        write_atomically(path, head + section + rest.split(end, 1)[1])
        print("README.md: comparison updated")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build")
    b.add_argument("name", choices=sorted(ENTRIES))
    b.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    b.add_argument("--root", default=os.path.join(ROOT, "runs", "zoo"))
    b.add_argument("--episodes", type=int, default=10)
    b.add_argument("--train-only", action="store_true", help="train or resume the seeds, no evaluation or card")
    st = sub.add_parser("status")
    st.add_argument("--root", default=os.path.join(ROOT, "runs", "zoo"))
    v = sub.add_parser("verify")
    v.add_argument("--episodes", type=int, default=10)
    c = sub.add_parser("compare")
    c.add_argument("--benchmark", default="dmc_cartpole_swingup", help="the benchmark part of the entries' names")
    c.add_argument("--readme", action="store_true", help="also write the table and curves into README.md")
    argv = sys.argv[1:]  # key=value overrides for fit may stand anywhere, after --seeds too (as the cards write them)
    overrides = [a for a in argv if "=" in a and not a.startswith("-")]
    args, extra = parser.parse_known_args([a for a in argv if a not in overrides])
    extra = overrides + extra
    if args.command == "compare":
        return compare(args)
    if args.command == "build" and len(args.seeds) < 3 and ENTRIES[args.name][0] is not None and not args.train_only:
        raise SystemExit("a zoo entry stands on at least 3 training seeds (--seeds)")
    if args.command == "status":
        return status(args)
    return build(args, extra) if args.command == "build" else verify(args)


if __name__ == "__main__":
    sys.exit(main())
