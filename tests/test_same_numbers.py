"""The redesign of the agent and the run (issue #13) changes no numbers.

``tests/data/reference_losses.pt`` was written by the code of commit 78d3599, before the redesign
(``python tests/test_same_numbers.py --write``): for each algorithm on its tiny config, the weights,
a fixed batch and the losses it gave. Today's code builds each agent, loads those weights and must
give the same losses on that batch with the same random seed.
"""

import os
import sys

import pytest
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
REFERENCE = os.path.join(HERE, "data", "reference_losses.pt")
CONFIGS = {"dreamer_v2": "tiny_point.yaml", "dreamer_v1": "tiny_point_v1.yaml", "world_models": "tiny_point_wm.yaml"}


def make_batch(obs_keys, action_dim, b=4, t=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    batch = {"action": torch.rand(b, t, action_dim, generator=g) * 2 - 1, "reward": torch.randn(b, t, generator=g),
             "is_first": torch.zeros(b, t, dtype=torch.bool), "is_terminal": torch.zeros(b, t, dtype=torch.bool)}
    batch["is_first"][:, 0] = True
    batch["is_terminal"][0, -1] = True
    batch["action"][:, 0] = 0
    batch["reward"][:, 0] = 0
    if "pixels" in obs_keys:
        batch["pixels"] = torch.randint(0, 256, (b, t, 3, 64, 64), generator=g, dtype=torch.uint8)
    if "state" in obs_keys:
        batch["state"] = torch.randn(b, t, 3, generator=g)
    return batch


def build(algo):
    """An agent of ``algo`` on its tiny config (today's construction API)."""
    from lightning_dreamer.loading import load_config
    from lightning_dreamer.train import build_agent

    cfg = load_config([os.path.join(ROOT, "configs", CONFIGS[algo])], [])
    torch.manual_seed(0)
    return build_agent(cfg)


def losses(algo, module, batch):
    """Every loss term of one update on ``batch`` (seeded, so sampled latents are the same)."""
    torch.manual_seed(1)
    if algo == "world_models":
        out = module.vae_losses(batch["pixels"].flatten(0, 1))
        out.update(module.mdn_losses(batch))
        return {k: float(v.detach()) for k, v in out.items()}
    post, terms, metrics = module.world_model_losses(batch)
    out = {k: float(v.detach().float().mean()) for k, v in terms.items()}
    out["kl_value"] = float(metrics["kl"].float().mean())  # the KL itself: the "kl" term may sit at free nats
    behaviour, _ = module.behaviour_losses(post, batch["is_terminal"])
    out.update(actor=float(behaviour["actor"].detach()), value=float(behaviour[module.VALUE_TERM].detach()))
    return out


@pytest.mark.parametrize("algo", sorted(CONFIGS))
def test_losses_are_those_of_the_code_before_the_redesign(algo):
    reference = torch.load(REFERENCE, weights_only=False)[algo]
    module = build(algo)
    module.load_state_dict(reference["state_dict"])
    got = losses(algo, module, reference["batch"])
    assert set(got) == set(reference["losses"])
    for key, value in reference["losses"].items():
        assert got[key] == pytest.approx(value, rel=1e-6, abs=1e-7), key


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    torch.set_num_threads(1)
    out = {}
    for name in CONFIGS:
        agent = build(name)
        data = make_batch(agent.obs_keys, agent.action_dim)
        out[name] = {"state_dict": agent.state_dict(), "batch": data, "losses": losses(name, agent, data)}
        print(name, out[name]["losses"])
    os.makedirs(os.path.dirname(REFERENCE), exist_ok=True)
    torch.save(out, REFERENCE)
