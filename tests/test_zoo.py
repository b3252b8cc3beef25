"""The zoo mechanism on a zoo of our own (a tiny run published into a temporary root): load by
name with the hash checked first, refuse a changed file, list the names, act, evaluate, fine-tune."""

import os

import pytest
import torch

import lightning_dreamer as ld
from conftest import ROOT, TINY_CONFIGS
from lightning_dreamer.__main__ import main
from lightning_dreamer.checkpoint import agent_from_checkpoint, load_agent, read_checkpoint, run_config_of
from lightning_dreamer.errors import UserError

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false", "run.threads=1"]


@pytest.fixture()
def tiny_zoo(tmp_path, monkeypatch):
    """A zoo root holding one entry, dreamer_v2/tiny_point, published from a finished tiny run."""
    run = tmp_path / "run"
    assert main(["fit", "--config", os.path.join(ROOT, "configs", TINY_CONFIGS["dreamer_v2"]), f"run.dir={run}",
                 "run.total_env_steps=70", *QUIET]) == 0
    ckpt = read_checkpoint(str(run / "checkpoints" / "last.ckpt"))
    agent = agent_from_checkpoint(ckpt)
    base = tmp_path / "zoo_root"
    monkeypatch.setenv("LIGHTNING_DREAMER_ZOO", str(base))
    ld.zoo.export(agent, run_config_of(ckpt), "dreamer_v2/tiny_point", {"score": 12.5, "score_std": 1.5, "seeds_mean": 11.0,
                                                                    "seeds_std": 2.0, "env_steps": 70})
    return base, agent


def test_an_entry_loads_by_name_with_its_hash_checked(tiny_zoo, capsys):
    base, trained = tiny_zoo
    assert sorted(os.listdir(base)) == ["checkpoints", "zoo"]
    assert os.path.exists(base / "zoo" / "dreamer_v2" / "tiny_point" / "config.yaml")
    mask = os.umask(0)
    os.umask(mask)
    for folder, _, files in os.walk(base):  # the weights too (safetensors makes its files 0600)
        for f in files:
            assert os.stat(os.path.join(folder, f)).st_mode & 0o777 == 0o666 & ~mask, f
    agent = ld.zoo.load("dreamer_v2/tiny_point")
    assert not agent.training and agent.run_cfg is None
    for key, value in trained.state_dict().items():
        assert torch.equal(value, agent.state_dict()[key])
    obs = {"pixels": torch.zeros(1, 3, 64, 64, dtype=torch.uint8), "state": torch.zeros(1, 3)}
    action, _ = agent.act(obs, torch.tensor([True]), None, explore=False)
    assert action.shape == (1, 1) and action.abs().max() <= 1
    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    assert "| dreamer_v2/tiny_point | dreamer_v2 | gym:lightning_dreamer/Point-v0 | 12.5 ± 1.5 | 11.0 ± 2.0 | 70 |" in out


@pytest.mark.parametrize("algo", sorted(TINY_CONFIGS))
def test_every_algorithm_round_trips_through_the_zoo(algo, tmp_path, monkeypatch):
    """Each algorithm's agent, exported from a finished tiny run, loads by name with the same
    weights and acts as the original does (World Models' controller included) on the same draw."""
    from lightning_dreamer.algos.base import build_env
    from lightning_dreamer.loading import config_from_dict

    run = tmp_path / "run"
    assert main(["fit", "--config", os.path.join(ROOT, "configs", TINY_CONFIGS[algo]), f"run.dir={run}",
                 "run.total_env_steps=70", *QUIET]) == 0
    ckpt = read_checkpoint(str(run / "checkpoints" / "last.ckpt"))
    agent = agent_from_checkpoint(ckpt).eval()
    monkeypatch.setenv("LIGHTNING_DREAMER_ZOO", str(tmp_path / "zoo_root"))
    ld.zoo.export(agent, run_config_of(ckpt), f"{algo}/tiny_point", {"score": 1.0, "score_std": 0.0, "env_steps": 70})
    loaded = ld.zoo.load(f"{algo}/tiny_point")
    assert type(loaded) is type(agent) and not loaded.training
    ours, theirs = agent.state_dict(), loaded.state_dict()
    assert set(ours) == set(theirs) and all(torch.equal(ours[k].cpu(), theirs[k].cpu()) for k in ours)
    env = build_env(config_from_dict(ld.zoo.run_config(f"{algo}/tiny_point")).env, seed=0)
    try:
        td = env.reset()
        obs = {k: td[k].unsqueeze(0) for k in agent.obs_keys}
        actions = []
        for model in (agent, loaded):
            torch.manual_seed(1)  # the Dreamers' filtering step samples the posterior latent
            actions.append(model.act(obs, torch.tensor([True]), None, explore=False)[0])
        torch.testing.assert_close(actions[1], actions[0])
    finally:
        env.close()


def test_a_changed_file_and_an_unknown_name_are_one_line(tiny_zoo, capsys):
    base, _ = tiny_zoo
    with pytest.raises(UserError, match="no zoo entry 'dreamer_v2/tiny_pont'. Entries: dreamer_v2/tiny_point"):
        ld.zoo.load("dreamer_v2/tiny_pont")
    card = base / "zoo" / "dreamer_v1" / "tiny_point" / "README.md"  # trained, below its floor: a card, no weights
    card.parent.mkdir(parents=True)
    card.write_text("# dreamer_v1/tiny_point\n\nbelow the floor: not published\n")
    with pytest.raises(UserError, match=r"zoo entry 'dreamer_v1/tiny_point' has been trained but is not published: its card "
                                        r"zoo/dreamer_v1/tiny_point/README.md says why. Entries: dreamer_v2/tiny_point$"):
        ld.zoo.load("dreamer_v1/tiny_point")
    weights = base / "checkpoints" / "dreamer_v2" / "tiny_point.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one flipped byte
    weights.write_bytes(bytes(data))
    with pytest.raises(UserError, match="has SHA-256 .* the index says .*refusing a changed or damaged file"):
        ld.zoo.load("dreamer_v2/tiny_point")
    assert main(["eval", "--ckpt", "zoo:dreamer_v2/tiny_point", "--episodes", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refusing a changed or damaged file" in err


def test_one_loader_reads_an_entry_and_a_checkpoint_alike(tiny_zoo, tmp_path):
    """``zoo:NAME`` and a checkpoint path (what eval, --init and the bench scripts take) give the
    same agent and the same run config when the entry was exported from that checkpoint."""
    base, trained = tiny_zoo
    last = str(tmp_path / "run" / "checkpoints" / "last.ckpt")
    (from_zoo, zoo_config, zoo_words), (from_ckpt, ckpt_config, ckpt_words) = (
        load_agent("zoo:dreamer_v2/tiny_point"), load_agent(last))
    assert type(from_zoo) is type(from_ckpt) and not from_zoo.training and not from_ckpt.training
    ours, theirs = from_zoo.state_dict(), from_ckpt.state_dict()
    assert set(ours) == set(theirs) and all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert zoo_config["env"] == ckpt_config["env"] and zoo_config["algo"] == ckpt_config["algo"] == "dreamer_v2"
    assert zoo_words == "zoo entry dreamer_v2/tiny_point, 70 env steps" and ckpt_words.endswith(" updates")
    with pytest.raises(UserError, match="checkpoint not found"):
        load_agent(str(tmp_path / "missing.ckpt"))


@pytest.mark.slow
def test_eval_and_fine_tuning_from_an_entry(tiny_zoo, tmp_path, capsys):
    assert main(["eval", "--ckpt", "zoo:dreamer_v2/tiny_point", "--episodes", "1"]) == 0
    assert "return over 1 episodes" in capsys.readouterr().out
    run = tmp_path / "tuned"
    config = os.path.join(ROOT, "configs", TINY_CONFIGS["dreamer_v2"])
    assert main(["fit", "--config", config, f"run.dir={run}", "run.total_env_steps=66", "replay.pretrain=0",
                 "--init", "zoo:dreamer_v2/tiny_point", *QUIET]) == 0
    assert "initialised from zoo:dreamer_v2/tiny_point" in capsys.readouterr().out
    assert main(["fit", "--config", config, f"run.dir={tmp_path / 'from_ckpt'}", "run.total_env_steps=66", "replay.pretrain=0",
                 "--init", str(run / "checkpoints" / "last.ckpt"), *QUIET]) == 0
    assert f"initialised from {run}" in capsys.readouterr().out
    # Weights that do not fit the config are refused on one line before any work.
    assert main(["fit", "--config", config, f"run.dir={tmp_path / 'other'}", "model.deter=64",
                 "--init", "zoo:dreamer_v2/tiny_point", *QUIET]) == 2
    assert "cannot start from zoo:dreamer_v2/tiny_point: its weights do not fit" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_zoo_builds_a_card_and_the_comparison(tmp_path):
    """bench/zoo.py end to end on the smoke entry: two seeds trained, evaluated, carded and published,
    their curves kept beside the card, and the comparison table written into a README."""
    import json
    import shutil
    import subprocess
    import sys

    base = tmp_path / "zoo_root"
    base.mkdir()
    env = {**os.environ, "LIGHTNING_DREAMER_ZOO": str(base), "OMP_NUM_THREADS": "1"}
    script = os.path.join(ROOT, "bench", "zoo.py")

    def zoo(*args):
        return subprocess.run([sys.executable, script, *args], cwd=ROOT, env=env, capture_output=True, text=True)

    built = zoo("build", "dreamer_v2/tiny_point", "--seeds", "0", "1", "--root", str(tmp_path / "runs"), "--episodes", "2",
                "run.total_env_steps=100", "run.eval_every=50", "run.threads=1")
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    folder = base / "zoo" / "dreamer_v2" / "tiny_point"
    card = (folder / "README.md").read_text()
    assert "Mean over 2 seeds" in card and "no floor" in card and "--ckpt_path" not in card
    assert "Mastering Atari with Discrete World Models" in card  # the paper
    assert "Environment: gym `lightning_dreamer/Point-v0` from 64x64 pixels and the state vector" in card  # configs/tiny_point.yaml's env
    assert str(tmp_path) not in card  # the command reproduces without this machine's folders
    assert "run.seed=<S> run.dir=runs/zoo/dreamer_v2/tiny_point/seed<S>" in card
    assert "--seeds 0 1 run.total_env_steps=100 run.eval_every=50`" in card  # the thread count is the machine's, not the recipe's
    for seed in (0, 1):  # each seed's training evaluations, as its run wrote them
        run_eval = (tmp_path / "runs" / "dreamer_v2" / "tiny_point" / f"seed{seed}" / "eval.csv").read_text()
        assert (folder / f"eval_seed{seed}.csv").read_text() == run_eval
        assert run_eval.splitlines()[-1].startswith("100,")  # the final evaluation, once
    result = json.loads((folder / "result.json").read_text())
    updates = [read_checkpoint(str(tmp_path / "runs" / "dreamer_v2" / "tiny_point" / f"seed{s}" / "checkpoints" / "last.ckpt"))
               ["lightning_dreamer"]["updates"] for s in (0, 1)]
    assert f"100 env steps per seed ({updates[0]:,}, {updates[1]:,} updates)" in card
    assert result["seeds"] == [0, 1] and len(result["scores"]) == 2 and result["episodes"] == 2
    assert result["published_seed"] in (0, 1) and "torch" in result["hardware"]
    assert f"seed {result['published_seed']}" in built.stdout
    agent = ld.zoo.load("dreamer_v2/tiny_point", base=str(base))
    entry = ld.zoo.entry("dreamer_v2/tiny_point", base=str(base))
    assert entry["training_seed"] == result["published_seed"]
    assert agent is not None
    seeds = folder / "seeds"  # each finished seed's record: score, curve, commit, command (its weights left once published)
    records = [json.loads((seeds / f"seed{s}.json").read_text()) for s in (0, 1)]
    assert [r["score"] for r in records] == result["scores"] and [r["updates"] for r in records] == updates
    from lightning_dreamer.hardware import auto_precision, machine
    where = f"{machine()}, {auto_precision('cpu')[0]}"  # each seed trained in one segment, here
    assert all(r["trained_on"] == [where] for r in records)
    assert f"| {where} |" in card and result["hardware"] == where and entry["hardware"] == where
    assert records[result["published_seed"]]["sha256"] == entry["sha256"]
    assert (seeds / "seed0.csv").read_text() == (folder / "eval_seed0.csv").read_text()
    assert sorted(os.listdir(seeds)) == ["seed0.csv", "seed0.json", "seed1.csv", "seed1.json"]

    (tmp_path / "runs" / "dreamer_v2" / "tiny_point" / "seed7").mkdir()  # a seed not started yet
    shown = zoo("status", "--root", str(tmp_path / "runs"))
    assert shown.returncode == 0, shown.stderr[-2000:]
    lines = shown.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [f"dreamer_v2/tiny_point seed{s}" for s in (0, 1, 0, 1, 7)]
    for line, rec in zip(lines, records):
        assert f"recorded, {rec['score'][0]:.1f} ± {rec['score'][1]:.1f} at 100 env steps" in line
    for line, count in zip(lines[2:], updates):
        assert f"checkpoint at 100 of 100 env steps, {count:,} updates, last evaluation" in line and line.endswith(", done")
    assert lines[4].endswith("no checkpoint yet")

    # The machine is gone (its runs with it): the records alone rebuild the same card and entry, training nothing.
    shutil.rmtree(tmp_path / "runs")
    rebuilt = zoo("build", "dreamer_v2/tiny_point", "--seeds", "0", "1", "run.total_env_steps=100", "run.eval_every=50",
                  "run.threads=2", "--root", str(tmp_path / "runs"), "--episodes", "2")  # overrides right after --seeds, as cards write them; the thread count is not the recipe
    assert rebuilt.returncode == 0, rebuilt.stdout[-2000:] + rebuilt.stderr[-2000:]
    assert f"{sys.executable} -m lightning_dreamer fit" not in rebuilt.stdout and not (tmp_path / "runs").exists()
    assert rebuilt.stdout.count("dreamer_v2/tiny_point seed") == 2 and "recorded (" in rebuilt.stdout
    assert (folder / "README.md").read_text() == card and ld.zoo.entry("dreamer_v2/tiny_point", base=str(base)) == entry
    other = zoo("build", "dreamer_v2/tiny_point", "--seeds", "0", "1", "--root", str(tmp_path / "runs"), "--episodes", "2",
                "run.total_env_steps=120", "run.eval_every=50", "run.threads=1")  # another recipe than the records'
    assert other.returncode == 1 and not (tmp_path / "runs").exists()
    assert other.stderr.strip().splitlines() == [
        "dreamer_v2/tiny_point seed 0 is recorded as trained by `python -m lightning_dreamer fit --config configs/tiny_point.yaml "
        "run.total_env_steps=200 run.eval_every=100 run.seed=<S> run.dir=runs/zoo/dreamer_v2/tiny_point/seed<S> --trainer.enable_progress_bar false run.total_env_steps=100 "
        "run.eval_every=50 run.threads=1` and evaluated on 2 episodes, not by `python -m lightning_dreamer fit --config "
        "configs/tiny_point.yaml run.total_env_steps=200 run.eval_every=100 run.seed=<S> run.dir=runs/zoo/dreamer_v2/tiny_point/seed<S> --trainer.enable_progress_bar false "
        "run.total_env_steps=120 run.eval_every=50 run.threads=1` on 2: give the same arguments, or delete "
        "zoo/dreamer_v2/tiny_point/seeds/seed0.* to train it again"]
    os.remove(base / entry["weights"])  # the median seed's weights are nowhere now
    lost = zoo("build", "dreamer_v2/tiny_point", "--seeds", "0", "1", "--root", str(tmp_path / "runs"), "--episodes", "2",
               "run.total_env_steps=100", "run.eval_every=50", "run.threads=1")
    stem = f"zoo/dreamer_v2/tiny_point/seeds/seed{result['published_seed']}"
    assert lost.returncode == 1 and lost.stderr.strip().splitlines() == [
        f"dreamer_v2/tiny_point seed {result['published_seed']}: no weights file has its recorded SHA-256 {entry['sha256'][:16]}...; "
        f"restore {stem}.safetensors from git history (`git log -- {stem}.safetensors`) or delete {stem}.* to train it again"]

    sys.path.insert(0, os.path.join(ROOT, "bench"))
    from zoo import readme_markers

    start, end = readme_markers("tiny_point")
    other = "\n".join(readme_markers("another_benchmark"))  # another benchmark's section stays as it is
    (base / "README.md").write_text(f"before\n{start}\nold table\n{end}\n{other}\nafter\n")
    compared = zoo("compare", "--benchmark", "tiny_point", "--readme")
    assert compared.returncode == 0, compared.stderr[-2000:]
    readme = (base / "README.md").read_text()
    assert readme.startswith("before\n") and readme.endswith(f"{end}\n{other}\nafter\n") and "old table" not in readme
    row = next(line for line in readme.splitlines() if line.startswith("| dreamer_v2 (2 seeds)"))
    means = [m for m, _ in result["scores"]]
    assert row.rstrip(" |").endswith(f"{sum(means) / 2:.1f} ± {abs(means[0] - means[1]) / 2 ** 0.5:.1f}")
    assert (base / "zoo" / "tiny_point.svg").read_text().startswith("<svg")

    (base / "README.md").write_text("no markers\n")
    refused = zoo("compare", "--benchmark", "tiny_point", "--readme")
    assert refused.returncode == 1 and "lacks the comparison markers" in refused.stderr
    few = zoo("build", "dreamer_v2/dmc_cartpole_swingup", "--seeds", "0")
    assert few.returncode == 1 and "at least 3 training seeds" in few.stderr

    # Rebuilt under a floor its seeds miss: the card says so, the index drops the entry the first build
    # published, and the seeds' weight files leave the tree as they do on publishing (git history keeps them).
    (seeds / "seed0.safetensors").write_bytes(b"a seed's weights")
    floor = ("import sys; sys.path.insert(0, 'bench'); import zoo; "
             "zoo.ENTRIES['dreamer_v2/tiny_point'] = (None, 1e9, None, 'a smoke run'); sys.exit(zoo.main())")
    below = subprocess.run([sys.executable, "-c", floor, "build", "dreamer_v2/tiny_point", "--seeds", "0", "1", "--root",
                            str(tmp_path / "runs"), "--episodes", "2", "run.total_env_steps=100", "run.eval_every=50",
                            "run.threads=1"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert below.returncode == 1, below.stdout[-2000:] + below.stderr[-2000:]
    assert "dreamer_v2/tiny_point: taken out of zoo/index.json" in below.stdout
    assert "below the floor: not published" in (folder / "README.md").read_text()
    assert "dreamer_v2/tiny_point" not in ld.zoo.entries(base=str(base)) and not (tmp_path / "runs").exists()
    assert sorted(os.listdir(seeds)) == ["seed0.csv", "seed0.json", "seed1.csv", "seed1.json"]


REPO_ENTRIES = sorted(ld.zoo.entries(base=ROOT))  # the zoo this repository publishes (zoo/index.json)


def test_the_repository_zoo_is_consistent():
    """Every published entry has its card, config and weights in the repository, the card names
    the weights' SHA-256, and the whole zoo stays small enough for git."""
    assert REPO_ENTRIES, "zoo/index.json lists no entry"
    total = 0
    for name in REPO_ENTRIES:
        info = ld.zoo.entry(name, base=ROOT)
        card = open(os.path.join(ROOT, "zoo", name, "README.md")).read()
        assert info["sha256"] in card and "Mean over" in card and "Reproduce:" in card
        assert os.path.exists(os.path.join(ROOT, info["config"]))
        total += os.path.getsize(os.path.join(ROOT, info["weights"]))
    assert total < 50 * 2**20


@pytest.mark.parametrize("name", REPO_ENTRIES)
def test_every_published_entry_loads_by_name_and_acts_in_its_env(name, monkeypatch):
    """The hash is checked, the agent loads from its weights alone and acts on a real first
    observation of the environment of its config."""
    from lightning_dreamer.algos.base import build_env
    from lightning_dreamer.loading import config_from_dict

    monkeypatch.delenv("LIGHTNING_DREAMER_ZOO", raising=False)
    agent = ld.zoo.load(name)
    assert not agent.training
    env = build_env(config_from_dict(ld.zoo.run_config(name)).env, seed=0)
    try:
        td = env.reset()
        obs = {k: td[k].unsqueeze(0) for k in agent.obs_keys}
        action, state = agent.act(obs, torch.tensor([True]), None, explore=False)
        assert action.shape == (1, agent.action_dim) and torch.isfinite(action).all() and action.abs().max() <= 1
        action2, _ = agent.act(obs, torch.tensor([False]), state, explore=False)  # the recurrent state carries on
        assert action2.shape == action.shape
    finally:
        env.close()
