import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("WANDB_MODE", "offline")

import pytest  # noqa: E402
import torch  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The tiny config of each algorithm (seconds-long runs on the bundled Point env).
TINY_CONFIGS = {"dreamer_v2": "tiny_point.yaml", "dreamer_v1": "tiny_point_v1.yaml", "world_models": "tiny_point_wm.yaml"}


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    torch.set_num_threads(1)


def make_agent(algo: str, *overrides: str):
    """An agent of ``algo`` built from its tiny config (with dotted overrides), its run attached."""
    from lightning_dreamer.loading import load_config
    from lightning_dreamer.train import build_agent

    return build_agent(load_config([os.path.join(ROOT, "configs", TINY_CONFIGS[algo])], list(overrides)))


def fake_batch(agent, B=3, T=6):
    """A random ``(B, T)`` replay batch with the agent's observation keys."""
    batch = {"reward": torch.randn(B, T), "is_first": torch.zeros(B, T, dtype=torch.bool),
             "is_terminal": torch.zeros(B, T, dtype=torch.bool), "action": torch.rand(B, T, agent.action_dim) * 2 - 1}
    batch["is_first"][:, 0] = True
    batch["is_terminal"][0, -1] = True
    if "pixels" in agent.obs_shapes:
        batch["pixels"] = torch.randint(0, 255, (B, T, *agent.obs_shapes["pixels"]), dtype=torch.uint8)
    if "state" in agent.obs_shapes:
        batch["state"] = torch.randn(B, T, *agent.obs_shapes["state"])
    return batch
