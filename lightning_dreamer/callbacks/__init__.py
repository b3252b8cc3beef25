"""Trainer callbacks: checkpoints (periodic and at a stop signal), a progress bar with RL counters,
evaluation episodes, open-loop videos.

Evaluation, videos and logging are side jobs: when one fails, the failure is reported on one line
and training goes on (``side_job``).
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, TQDMProgressBar
from tqdm import tqdm

from lightning_dreamer.callbacks.csv_logger import cut_rows
from lightning_dreamer.errors import one_line


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


def side_job(pl_module, what: str, fn, *args, **kwargs):
    """Run ``fn``; if it raises, report ``what`` failed on one line and return None (training goes on)."""
    try:
        return fn(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 - a side job must never end the run
        pl_module.print(f"warning: {what} failed at {pl_module.env_steps:,} env steps ({one_line(err)}); training continues")
        return None


def guard_logger(logger):
    """Make ``logger.log_metrics`` report its first failure on one line and otherwise ignore
    failures: a full disk or a dead wandb server must not end a training run. Guarding the
    instance covers Lightning's own logging (``self.log``) as well as ours."""
    original = logger.log_metrics
    failed = []

    def log_metrics(metrics, step=None):
        try:
            original(metrics, step)
        except Exception as err:  # noqa: BLE001 - see above
            if not failed:
                failed.append(err)
                tqdm.write(f"warning: logging to {type(logger).__name__} failed ({type(err).__name__}: {err}); "
                           "training continues (later failures of this logger are not reported)", file=sys.stderr)

    logger.log_metrics = log_metrics
    return logger


def log_to_loggers(pl_module, metrics: dict, step: int) -> None:
    """Write ``metrics`` straight to every logger (guarded: see ``guard_logger``)."""
    for logger in pl_module.trainer.loggers:
        logger.log_metrics(metrics, step=step)


def save_run(trainer, path: str) -> None:
    """Save the checkpoint with its replay copy as one unit (see algos/base.py), then drop the
    replay copy of the checkpoint it replaced."""
    trainer.save_checkpoint(path, weights_only=False)
    trainer.lightning_module.checkpoint_written()


class ProgressBar(TQDMProgressBar):
    """TQDM bar showing env steps, gradient updates, last episode return and updates/s."""

    def print(self, *args, sep: str = " ", **kwargs) -> None:
        # Lightning's bar drops messages while no bar is open (setup, on_fit_start: the
        # "resumed:" and "replay:" lines); print those plainly.
        bars = (self._train_progress_bar, self._val_progress_bar)
        if any(bar is not None and not bar.disable for bar in bars):
            super().print(*args, sep=sep, **kwargs)
        else:
            print(*args, sep=sep, flush=True, **kwargs)

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
    Dreamer update takes three optimizer steps, a CMA-ES generation none), and when SIGINT or
    SIGTERM (or, under SLURM, SIGUSR1) arrives.

    It saves at the start of a batch, when the last update is counted and no new environment step
    was taken, so the checkpoint's counters, weights and replay agree. A signal is noted by the
    handler and acted on at the next such point: save, then stop the fit (``pl_module.stop_signal``
    names the signal; the CLI exits with 128 + its number). A second Ctrl-C stops at once without
    saving. Under SLURM, SIGUSR1 (``#SBATCH --signal=USR1@90``) also requeues the job, and the
    requeued job resumes by itself (see ``__main__``). Under DDP the ranks agree to stop together.
    """

    def __init__(self, path: str, every: int):
        self.path, self.every = path, every
        self.saved_at = None
        self.requested: str | None = None
        self._previous: dict = {}

    @staticmethod
    def _signals() -> list:
        return [signal.SIGINT, signal.SIGTERM] + ([signal.SIGUSR1] if "SLURM_JOB_ID" in os.environ else [])

    def _install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may handle signals (fit called from a worker thread)
        for sig in self._signals():
            previous = signal.signal(sig, self._handle)
            self._previous.setdefault(sig, previous)

    def setup(self, trainer, pl_module, stage):
        # Before prefill; again in on_train_start, after Lightning put in its own SIGTERM handler
        # (which would end the fit with exit code 0 and no checkpoint).
        self._install()

    def teardown(self, trainer, pl_module, stage):
        for sig, previous in self._previous.items():
            if signal.getsignal(sig) == self._handle and previous is not None:
                signal.signal(sig, previous)
        self._previous = {}

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: stop now, without saving
        self.requested = name
        try:  # os.write: safe inside a signal handler, unlike print
            os.write(sys.stderr.fileno(), f"\n{name} received: saving a checkpoint after this step, then stopping "
                                          f"(Ctrl-C again stops at once without saving)\n".encode())
        except (OSError, ValueError, AttributeError):
            pass

    def on_train_start(self, trainer, pl_module):
        self.saved_at = pl_module.updates  # a resumed run starts from a checkpoint at this count
        self._install()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        stop = self.requested is not None
        if trainer.world_size > 1:
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        updates = pl_module.updates
        if stop:
            pl_module.stop_signal = self.requested or "a signal to another rank"
            save_run(trainer, self.path)
            trainer.should_stop = True
            if self.requested == "SIGUSR1" and trainer.is_global_zero:
                requeue_slurm_job(pl_module)
        elif self.every and updates and updates % self.every == 0 and updates != self.saved_at:
            save_run(trainer, self.path)
            self.saved_at = updates


def requeue_slurm_job(pl_module) -> None:
    """``scontrol requeue`` this job (an array task: ``<array job>_<task>``)."""
    job = os.environ["SLURM_JOB_ID"]
    if os.environ.get("SLURM_ARRAY_JOB_ID") and os.environ.get("SLURM_ARRAY_TASK_ID"):
        job = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    try:
        result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
        ok, detail = result.returncode == 0, (result.stderr or result.stdout).strip()
    except OSError as err:
        ok, detail = False, str(err)
    pl_module.print(f"requeued SLURM job {job}" if ok else f"warning: scontrol requeue {job} failed ({detail})")


class _EveryEnvSteps(Callback):
    def __init__(self, every: int):
        self.every = every
        self.next: int | None = None

    def due(self, pl_module) -> bool:
        if not self.every:
            return False
        following = self.next if self.next is not None else (pl_module.env_steps // self.every + 1) * self.every
        if pl_module.env_steps < following:
            self.next = following
            return False
        while following <= pl_module.env_steps:
            following += self.every
        self.next = following
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
        side_job(pl_module, "evaluation", self._evaluate, trainer, pl_module)

    def _evaluate(self, trainer, pl_module):
        from lightning_dreamer.envs import make_env

        if self.env is None:
            self.env = make_env(pl_module.run_config.env, seed=pl_module.run_config.run.seed + 10**6)
        returns, _, _ = pl_module.evaluate(self.env, self.episodes)
        mean, std = float(np.mean(returns)), float(np.std(returns))
        path = os.path.join(pl_module.run_config.run.dir, "eval.csv")
        new = not os.path.exists(path)
        with open(path, "a") as f:
            if new:
                f.write("env_steps,updates,return_mean,return_std,episodes,wall_s\n")
            f.write(f"{pl_module.env_steps},{pl_module.updates},{mean:.3f},{std:.3f},{len(returns)},{time.time() - self.started:.1f}\n")
        log_to_loggers(pl_module, {"eval/return": mean, "eval/return_std": std, "progress/env_steps": pl_module.env_steps},
                       pl_module.log_step)
        pl_module.print(f"eval @ {pl_module.env_steps:,} env steps: return {mean:.1f} ± {std:.1f} ({len(returns)} episodes)")

    def on_train_start(self, trainer, pl_module):
        # A resumed run: evaluations the stopped run made after its checkpoint are made again.
        path = os.path.join(pl_module.run_config.run.dir, "eval.csv")
        if trainer.is_global_zero and os.path.exists(path):
            rows = cut_rows(path, lambda row: int(row["env_steps"]) <= pl_module.env_steps)
            if rows and int(rows[-1]["env_steps"]) == pl_module.env_steps:  # evaluated here already (a finished run)
                self.last_env_steps = pl_module.env_steps

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        requested = getattr(pl_module, "eval_requested", False)  # e.g. World Models after a controller stage
        if self.due(pl_module) or (self.every and requested):
            pl_module.eval_requested = False
            self.run(trainer, pl_module, force=requested)

    def on_train_end(self, trainer, pl_module):
        if self.every and not pl_module.stop_signal:  # a stopped run exits promptly
            self.run(trainer, pl_module)


class VideoCallback(_EveryEnvSteps):
    """Every ``every`` env steps, write ``<run.dir>/videos/openloop_<env_steps>.mp4``: real
    frames | model frames (5 observed, the rest imagined open loop) | error."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.due(pl_module) and trainer.is_global_zero:
            side_job(pl_module, "the open-loop video", self._write, trainer, pl_module)

    def _write(self, trainer, pl_module):
        video = pl_module.openloop_video(pl_module.replay.sample()).cpu()
        path = write_video(os.path.join(pl_module.run_config.run.dir, "videos", f"openloop_{pl_module.env_steps}.mp4"), video)
        for logger in trainer.loggers:
            if type(logger).__name__ == "WandbLogger":
                import wandb

                logger.experiment.log({"video/openloop": wandb.Video(path, format="mp4")})
            elif type(logger).__name__ == "TensorBoardLogger":
                strip = video[:: max(1, video.shape[0] // 10)].permute(0, 3, 1, 2)  # up to 10 frames side by side
                logger.experiment.add_image("video/openloop", torch.cat(list(strip), -1), pl_module.log_step)
