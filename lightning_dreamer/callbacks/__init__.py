"""Trainer callbacks: a progress bar with RL counters, evaluation episodes, open-loop videos."""

from __future__ import annotations

import math
import os
import time

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, TQDMProgressBar


def write_video(path: str, frames, fps: int = 20) -> str:
    """Write ``(T, H, W, C)`` or a list of ``(C, H, W)`` uint8 frames to .mp4 or .gif."""
    import imageio

    if isinstance(frames, (list, tuple)):
        frames = torch.stack(list(frames), 0).permute(0, 2, 3, 1)
    frames = np.asarray(frames)
    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, -1)
    # Codecs want even sides; upscale tiny frames so they are watchable.
    scale = max(1, 256 // max(frames.shape[1:3]))
    frames = frames.repeat(scale, 1).repeat(scale, 2)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp" + os.path.splitext(path)[1]
    if path.endswith(".gif"):
        imageio.mimsave(tmp, list(frames), duration=1000 / fps, loop=0)
    else:
        imageio.mimsave(tmp, list(frames), fps=fps, macro_block_size=1)
    os.replace(tmp, path)
    return path


class ProgressBar(TQDMProgressBar):
    """TQDM bar showing env steps, gradient updates, last episode return and updates/s."""

    def get_metrics(self, trainer, pl_module):
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        ret = pl_module.last_return
        if getattr(pl_module, "stage", None):  # World Models: which stage of which iteration
            items.update(stage=f"{pl_module.stage}@{pl_module.iteration}")
        items.update(env_steps=f"{pl_module.env_steps:,}", updates=pl_module.updates,
                     ret="-" if math.isnan(ret) else f"{ret:.1f}", upd_s=f"{pl_module.updates_per_second():.2f}")
        return items


class PeriodicCheckpoint(Callback):
    """Save ``path`` every ``every`` updates (the module's own counter, not optimizer steps: a
    Dreamer update takes three optimizer steps, a CMA-ES generation none). It saves at the start
    of the following batch, when the update is counted and no new environment step was taken,
    so the checkpoint's counters, weights and replay agree. Lightning writes the file atomically."""

    def __init__(self, path: str, every: int):
        self.path, self.every = path, every
        self.saved_at = None

    def on_train_start(self, trainer, pl_module):
        self.saved_at = pl_module.updates  # a resumed run starts from a checkpoint at this count

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        updates = pl_module.updates
        if self.every and updates and updates % self.every == 0 and updates != self.saved_at:
            trainer.save_checkpoint(self.path, weights_only=False)
            self.saved_at = updates


class _EveryEnvSteps(Callback):
    def __init__(self, every: int):
        self.every = every
        self.next = None

    def due(self, pl_module) -> bool:
        if not self.every:
            return False
        if self.next is None:
            self.next = (pl_module.env_steps // self.every + 1) * self.every
        if pl_module.env_steps < self.next:
            return False
        while self.next <= pl_module.env_steps:
            self.next += self.every
        return True


class EvalCallback(_EveryEnvSteps):
    """Every ``every`` env steps (and at the end), play ``episodes`` with the deterministic
    policy on rank 0; log ``eval/return`` and append a row to ``<run.dir>/eval.csv``."""

    def __init__(self, every: int, episodes: int):
        super().__init__(every)
        self.episodes = episodes
        self.env = None
        self.started = time.time()
        self.last_env_steps = None

    def run(self, trainer, pl_module, force: bool = False):
        if not trainer.is_global_zero or (pl_module.env_steps == self.last_env_steps and not force):
            return
        self.last_env_steps = pl_module.env_steps
        from lightning_dreamer.envs import make_env

        if self.env is None:
            self.env = make_env(pl_module.cfg.env, seed=pl_module.cfg.run.seed + 10**6)
        returns, _, _ = pl_module.evaluate(self.env, self.episodes)
        mean, std = float(np.mean(returns)), float(np.std(returns))
        path = os.path.join(pl_module.cfg.run.dir, "eval.csv")
        new = not os.path.exists(path)
        with open(path, "a") as f:
            if new:
                f.write("env_steps,updates,return_mean,return_std,episodes,wall_s\n")
            f.write(f"{pl_module.env_steps},{pl_module.updates},{mean:.3f},{std:.3f},{len(returns)},{time.time() - self.started:.1f}\n")
        for logger in trainer.loggers:
            logger.log_metrics({"eval/return": mean, "eval/return_std": std, "progress/env_steps": pl_module.env_steps},
                               step=pl_module.log_step)
        pl_module.print(f"eval @ {pl_module.env_steps:,} env steps: return {mean:.1f} ± {std:.1f} ({len(returns)} episodes)")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        requested = getattr(pl_module, "eval_requested", False)  # e.g. World Models after a controller stage
        if self.due(pl_module) or (self.every and requested):
            pl_module.eval_requested = False
            self.run(trainer, pl_module, force=requested)

    def on_train_end(self, trainer, pl_module):
        if self.every:
            self.run(trainer, pl_module)


class VideoCallback(_EveryEnvSteps):
    """Every ``every`` env steps, write ``<run.dir>/videos/openloop_<env_steps>.mp4``: real
    frames | model frames (5 observed, the rest imagined open loop) | error."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if not self.due(pl_module) or not trainer.is_global_zero:
            return
        video = pl_module.openloop_video(pl_module.replay.sample()).cpu()
        path = write_video(os.path.join(pl_module.cfg.run.dir, "videos", f"openloop_{pl_module.env_steps}.mp4"), video)
        for logger in trainer.loggers:
            if type(logger).__name__ == "WandbLogger":
                import wandb

                logger.experiment.log({"video/openloop": wandb.Video(path, format="mp4")})
            elif type(logger).__name__ == "TensorBoardLogger":
                strip = video[:: max(1, video.shape[0] // 10)].permute(0, 3, 1, 2)  # up to 10 frames side by side
                logger.experiment.add_image("video/openloop", torch.cat(list(strip), -1), pl_module.log_step)
