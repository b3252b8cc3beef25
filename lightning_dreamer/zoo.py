"""The model zoo: trained agents that load by name, with no training script and no environment.

Layout (under the repository root, or the folder ``$LIGHTNING_DREAMER_ZOO`` names)::

    zoo/index.json                              name -> algorithm, config, weights, SHA-256, summary
    zoo/<algorithm>/<benchmark>/config.yaml     the full run config the agent was trained with
    zoo/<algorithm>/<benchmark>/README.md       the card (written by bench/zoo.py)
    checkpoints/<algorithm>/<benchmark>.safetensors
                                                weights only (no optimiser, replay or pickle); its
                                                metadata holds the agent's hyperparameters (EnvSpec
                                                and model config) as JSON

``load(name)`` checks the weights' SHA-256 against the index before reading them, rebuilds the
agent from its hyperparameters (``Algo(spec, **model)``) and loads the weights::

    import lightning_dreamer as ld
    agent = ld.zoo.load("dreamer_v2/dmc_cartpole_swingup", device="cuda")   # eval mode
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from typing import Any

from lightning_dreamer.errors import UserError

PREFIX = "zoo:"  # how the CLI names an entry: --ckpt zoo:NAME, --init zoo:NAME


def root() -> str:
    """The folder holding zoo/ and checkpoints/: ``$LIGHTNING_DREAMER_ZOO``, else the repository."""
    return os.environ.get("LIGHTNING_DREAMER_ZOO") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _index_path(base: str) -> str:
    return os.path.join(base, "zoo", "index.json")


def entries(base: str | None = None) -> dict[str, dict[str, Any]]:
    """Every entry of the index, by name (empty if there is no index)."""
    path = _index_path(base or root())
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)["entries"]


def entry(name: str, base: str | None = None) -> dict[str, Any]:
    """The index entry ``name``, or a UserError listing the names there are (closest first)."""
    known = entries(base)
    if name not in known:
        names = difflib.get_close_matches(name, list(known), n=len(known), cutoff=0.0) if known else []
        listed = f"Entries: {', '.join(names) if names else '(none yet)'}"
        card = os.path.join("zoo", *name.split("/"), "README.md")
        if name.count("/") == 1 and ".." not in name and os.path.exists(os.path.join(base or root(), card)):
            raise UserError(f"zoo entry '{name}' has been trained but is not published: its card {card} says why. {listed}")
        raise UserError(f"no zoo entry '{name}'. {listed}")
    return known[name]


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified_weights(name: str, base: str | None = None) -> str:
    """The path of ``name``'s weights after checking its SHA-256 against the index."""
    base = base or root()
    info = entry(name, base)
    path = os.path.join(base, info["weights"])
    if not os.path.exists(path):
        raise UserError(f"zoo entry '{name}': its weights {info['weights']} are missing")
    found = sha256(path)
    if found != info["sha256"]:
        raise UserError(f"zoo entry '{name}': {info['weights']} has SHA-256 {found[:16]}..., the index says "
                        f"{info['sha256'][:16]}...; refusing a changed or damaged file")
    return path


def run_config(name: str, base: str | None = None) -> dict[str, Any]:
    """The full run config ``name`` was trained with (its env, to play it in)."""
    from omegaconf import OmegaConf

    base = base or root()
    config = OmegaConf.to_container(OmegaConf.load(os.path.join(base, entry(name, base)["config"])), resolve=True)
    assert isinstance(config, dict)
    return config  # type: ignore[return-value]


def agent_from_weights(path: str, algo: str, device: str = "cpu"):
    """The agent in the weights file ``path`` (safetensors with its hyperparameters in the metadata),
    rebuilt as ``algo`` and put in eval mode on ``device``. Checks no hash: the caller does."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from lightning_dreamer.registry import get_algo

    with safe_open(path, framework="pt") as f:
        hparams = json.loads(f.metadata()["hparams"])
    agent = get_algo(algo)(**hparams)
    agent.load_state_dict(load_file(path))
    return agent.to(device).eval()


def load(name: str, device: str = "cpu", base: str | None = None):
    """The agent ``name`` in eval mode on ``device`` (hash checked first)."""
    return agent_from_weights(verified_weights(name, base), entry(name, base)["algo"], device)


def save_weights(agent, path: str) -> str:
    """Write ``agent``'s weights and hyperparameters to ``path`` (safetensors, atomically: a stopped
    write leaves the old file or none), readable as the umask allows. Returns the file's SHA-256."""
    from safetensors.torch import save_file

    from lightning_dreamer.files import fsync_dir

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in agent.state_dict().items()}, path + ".tmp",
              metadata={"hparams": json.dumps(dict(agent.hparams))})
    mask = os.umask(0)  # safetensors creates its file 0600; give it the mode any other new file here gets
    os.umask(mask)
    os.chmod(path + ".tmp", 0o666 & ~mask)
    os.replace(path + ".tmp", path)
    fsync_dir(os.path.dirname(path) or ".")
    return sha256(path)


def export(agent, config: dict[str, Any], name: str, summary: dict[str, Any] | None = None, base: str | None = None) -> str:
    """Publish ``agent`` (weights and hyperparameters) with its run ``config`` as entry ``name``
    (``<algorithm>/<benchmark>``); ``summary`` (score, std, env steps, ...) goes into the index.
    Returns the weights' path. Every file is written atomically."""
    from omegaconf import OmegaConf

    from lightning_dreamer.files import fsync_dir

    algo, _, benchmark = name.partition("/")
    if algo != config.get("algo") or not benchmark or "/" in benchmark:
        raise UserError(f"zoo name '{name}' must be '<algorithm>/<benchmark>' with the config's algorithm ({config.get('algo')})")
    base = base or root()
    weights = os.path.join("checkpoints", algo, f"{benchmark}.safetensors")
    config_file = os.path.join("zoo", algo, benchmark, "config.yaml")
    digest = save_weights(agent, os.path.join(base, weights))
    path = os.path.join(base, config_file)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    OmegaConf.save(OmegaConf.create(config), path + ".tmp")
    os.replace(path + ".tmp", path)
    fsync_dir(os.path.dirname(path))
    index = entries(base)
    params = sum(v.numel() for v in agent.state_dict().values())
    index[name] = {"algo": algo, "benchmark": benchmark, "env": f"{config['env']['suite']}:{config['env']['name']}",
                   "config": config_file, "weights": weights, "sha256": digest,
                   "params": params, **(summary or {})}
    _write_index(index, base)
    return os.path.join(base, weights)


def withdraw(name: str, base: str | None = None) -> bool:
    """Take entry ``name`` out of the index and delete its weights (its card and config stay):
    what a rebuilt card below its floor asks for. The index is rewritten before the weights go,
    so no state lists a missing file. Returns whether there was such an entry."""
    base = base or root()
    index = entries(base)
    info = index.pop(name, None)
    if info is None:
        return False
    _write_index(index, base)
    weights = os.path.join(base, info["weights"])
    if os.path.exists(weights):
        os.remove(weights)
    return True


def _write_index(index: dict[str, dict[str, Any]], base: str) -> None:
    from lightning_dreamer.files import fsync_dir

    path = _index_path(base)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump({"entries": dict(sorted(index.items()))}, f, indent=2)
        f.write("\n")
    os.replace(path + ".tmp", path)
    fsync_dir(os.path.dirname(path))


def table(base: str | None = None) -> str:
    """A markdown table of every entry: name, algorithm, env, the published weights' score ± std over
    the evaluation episodes, the mean ± std over the training seeds (the card's figure), env steps, size."""
    rows = ["| name | algorithm | env | these weights: score ± std | training seeds: mean ± std | env steps | size |",
            "|---|---|---|---|---|---|---|"]
    base = base or root()
    for name, info in entries(base).items():
        score = f"{info['score']:.1f} ± {info.get('score_std', 0.0):.1f}" if "score" in info else "–"
        seeds = f"{info['seeds_mean']:.1f} ± {info.get('seeds_std', 0.0):.1f}" if "seeds_mean" in info else "–"
        steps = f"{info['env_steps']:,}" if "env_steps" in info else "–"
        size = os.path.getsize(os.path.join(base, info["weights"])) / 2**20 if os.path.exists(os.path.join(base, info["weights"])) else 0
        rows.append(f"| {name} | {info['algo']} | {info['env']} | {score} | {seeds} | {steps} | {info['params']:,} params, {size:.1f} MiB |")
    return "\n".join(rows)
