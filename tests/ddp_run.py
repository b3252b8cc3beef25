"""Run by tests/test_smoke.py: two-process DDP (gloo) through lightning_dreamer.train.fit.

Lightning re-executes this script for rank 1. Each rank dumps its weights and counters.
"""

import os
import sys

import torch
from lightning.pytorch.callbacks import Callback

from lightning_dreamer.loading import load_config
from lightning_dreamer.train import fit

out, config = sys.argv[1], sys.argv[2]


class Dump(Callback):
    def on_train_end(self, trainer, module):
        torch.save({"state": module.state_dict(), "policy_steps": module.policy_steps, "env_steps": module.env_steps,
                    "updates": module.updates, "replay": len(module.replay),
                    "states": module.replay.read("state", 0, 100)},  # the first 100 observations this rank saw
                   os.path.join(out, f"rank{trainer.global_rank}.pt"))


cfg = load_config([config], [f"run.dir={out}/run", "run.total_env_steps=200", "trainer.strategy=ddp", "trainer.devices=2",
                             "trainer.accelerator=cpu", "trainer.enable_progress_bar=false", "run.threads=1"])
fit(cfg, callbacks=[Dump()])
