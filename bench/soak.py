"""Kill soak: kill tiny runs of every algorithm at random moments and inside each write, resume
each time, and count what a kill cost.

    python bench/soak.py                       # 3 algorithms x 12 kills, TMPDIR on another filesystem
    python bench/soak.py --kills 30 --algos dreamer_v2

Half the kills are ``kill -9`` after a random delay; the other half are injected inside a write
(``LIGHTNING_DREAMER_CRASH_AT``, see lightning_dreamer/files.py), cycling through the points. After
every kill the checkpoint on disk is read with the replay copy it names, and the run is resumed.
Printed per algorithm: kills, resumes, and the transitions lost (counted by the checkpoint, absent
from its replay) or uncounted (in the replay, not counted): both must be 0. Counters must never
run backwards between consecutive checkpoints, and the finished run's replay must hold exactly
the agent steps it counted.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))

from learn import fit_command  # noqa: E402  (how a run starts)

CONFIGS = {"dreamer_v2": "configs/tiny_point.yaml", "dreamer_v1": "configs/tiny_point_v1.yaml",
           "world_models": "configs/tiny_point_wm.yaml"}
EXTRA = {"dreamer_v2": ["run.checkpoint_every=10"], "dreamer_v1": ["run.checkpoint_every=10"],
         # World Models: a stage machine long enough to be killed in every stage many times over.
         "world_models": ["run.checkpoint_every=3", "model.iterations=8", "model.vae_updates=40",
                          "model.mdn_updates=40", "model.generations=12", "model.collect_steps=100"]}
POINTS = ("replay_chunk", "replay_done", "checkpoint_tmp", "checkpoint_done")
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false", "run.threads=1",
         "run.eval_every=0"]


def saved(run: str):
    """(counters of last.ckpt, agent steps in the replay copy it names, entries in it)."""
    ckpt = torch.load(os.path.join(run, "checkpoints", "last.ckpt"), map_location="cpu", weights_only=False)
    state = ckpt["lightning_dreamer"]
    folder = os.path.join(run, "replay", "saved-rank0", f"g{state['generation']:08d}")
    chunks = [torch.load(os.path.join(folder, n), weights_only=True) for n in sorted(os.listdir(folder)) if n.startswith("chunk")]
    is_first = torch.cat([c["is_first"] for c in chunks])
    return state, int((~is_first).sum()), len(is_first)


def soak(algo: str, kills: int, budget: int, tmpdir: str, rng: random.Random, root: str) -> dict:
    run = os.path.join(root, algo)
    base = fit_command([CONFIGS[algo]], [f"run.dir={run}", *EXTRA[algo], *QUIET])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": tmpdir}
    counts = {"kills": 0, "random": 0, "in_write": 0, "resumes": 0, "lost": 0, "uncounted": 0, "backwards": 0,
              "no_checkpoint_yet": 0}
    last_counters = (0, 0)
    for i in range(kills + 1):
        resume = os.path.exists(os.path.join(run, "checkpoints", "last.ckpt"))
        final = i == kills
        args = base + [f"run.total_env_steps={budget}"] + (["--ckpt_path", "last"] if resume else [])
        run_env = dict(env)
        if not final and i % 2 == 1:
            run_env["LIGHTNING_DREAMER_CRASH_AT"] = f"{POINTS[(i // 2) % len(POINTS)]}:{rng.randint(1, 3)}"
        proc = subprocess.Popen(args, cwd=ROOT, env=run_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        counts["resumes"] += resume
        if final:
            out, err = proc.communicate()
            if proc.returncode != 0:
                raise SystemExit(f"{algo}: the final run failed (exit {proc.returncode}): {err[-1500:]}")
        elif "LIGHTNING_DREAMER_CRASH_AT" in run_env:
            out, err = proc.communicate()
            if proc.returncode == -signal.SIGKILL:
                counts["in_write"] += 1
                counts["kills"] += 1
            elif proc.returncode != 0:
                raise SystemExit(f"{algo}: run {i} failed (exit {proc.returncode}): {err[-1500:]}")
        else:
            time.sleep(rng.uniform(3.0, 12.0))
            if proc.poll() is None:
                proc.kill()
                counts["random"] += 1
                counts["kills"] += 1
            proc.communicate()
            if proc.returncode not in (0, -signal.SIGKILL):
                raise SystemExit(f"{algo}: run {i} failed (exit {proc.returncode})")
        if not os.path.exists(os.path.join(run, "checkpoints", "last.ckpt")):
            counts["no_checkpoint_yet"] += 1
            continue
        state, agent_steps, size = saved(run)
        counts["lost"] += max(0, state["policy_steps"] - agent_steps) + max(0, state["replay_steps"] - size)
        counts["uncounted"] += max(0, agent_steps - state["policy_steps"]) + max(0, size - state["replay_steps"])
        counters = (state["policy_steps"], state["updates"])
        counts["backwards"] += counters < last_counters
        last_counters = counters
    state, agent_steps, _ = saved(run)
    counts["final_steps"] = state["policy_steps"]
    counts["final_ok"] = state["policy_steps"] == agent_steps
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algos", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--kills", type=int, default=12, help="kills per algorithm")
    parser.add_argument("--budget", type=int, default=3000, help="env steps of each run")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    tmpdir = tempfile.mkdtemp(prefix="soak-tmp-", dir=shm)
    root = tempfile.mkdtemp(prefix="soak-runs-", dir=ROOT)
    other = os.stat(tmpdir).st_dev != os.stat(root).st_dev
    print(f"runs in {root}; TMPDIR={tmpdir} ({'another' if other else 'the same'} filesystem)")
    print("| algorithm | kills (random / in a write) | resumes | lost | uncounted | counters backwards | final steps = replay |")
    print("|---|---|---|---|---|---|---|")
    bad = False
    for algo in args.algos:
        c = soak(algo, args.kills, args.budget, tmpdir, rng, root)
        bad |= bool(c["lost"] or c["uncounted"] or c["backwards"] or not c["final_ok"])
        print(f"| {algo} | {c['kills']} ({c['random']} / {c['in_write']}) | {c['resumes']} | {c['lost']} | {c['uncounted']} | "
              f"{c['backwards']} | {c['final_steps']} = {'yes' if c['final_ok'] else 'NO'} |", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
