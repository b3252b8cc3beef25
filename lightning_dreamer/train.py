"""Build the Lightning Trainer for a config and run ``fit``: the one place that does it."""

from __future__ import annotations

import os
import warnings

from lightning_dreamer.config import ConfigError, to_dict


def _set_threads(cfg, processes: int) -> None:
    import torch

    threads = cfg.run.threads or max(1, (os.cpu_count() or 1) // max(1, processes))
    torch.set_num_threads(threads)


def _trainer_kwargs(cfg, run_dir: str):
    from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
    from lightning.pytorch.strategies import DDPStrategy
    from omegaconf import OmegaConf

    from lightning_dreamer.callbacks import EvalCallback, PeriodicCheckpoint, ProgressBar, VideoCallback
    from lightning_dreamer.callbacks.csv_logger import AppendingCSVLogger

    loggers = []
    allowed = ("csv", "tensorboard", "wandb")
    for name in cfg.run.loggers:
        if name not in allowed:
            raise ConfigError(f"unknown logger '{name}' in run.loggers. Allowed: {', '.join(allowed)}")
    if "csv" in cfg.run.loggers:
        # Written at every log call: Lightning flushes only when (step + 1) % 100 == 0, which steps
        # logged every run.log_every updates (or episodes, evaluations) may never hit.
        loggers.append(AppendingCSVLogger(run_dir, name="logs", version="csv", flush_logs_every_n_steps=1))
    if "tensorboard" in cfg.run.loggers:
        loggers.append(TensorBoardLogger(run_dir, name="logs", version="tensorboard", default_hp_metric=False))
    if "wandb" in cfg.run.loggers:
        os.environ.setdefault("WANDB_MODE", "offline")  # no account, no prompt, unless the user set a server
        os.environ.setdefault("WANDB_SILENT", "true")
        loggers.append(WandbLogger(save_dir=run_dir, project="lightning_dreamer", name=os.path.basename(run_dir.rstrip("/"))))
    callbacks = [
        PeriodicCheckpoint(os.path.join(run_dir, "checkpoints", "last.ckpt"), cfg.run.checkpoint_every),
        EvalCallback(cfg.run.eval_every, cfg.run.eval_episodes),
        VideoCallback(cfg.run.video_every),
    ]
    user = OmegaConf.to_container(cfg.trainer, resolve=True)
    if user.get("enable_progress_bar", True):
        callbacks.append(ProgressBar())
    kwargs = dict(max_epochs=-1, logger=loggers or False, callbacks=callbacks, default_root_dir=run_dir,
                  log_every_n_steps=cfg.run.log_every, num_sanity_val_steps=0, use_distributed_sampler=False,
                  limit_val_batches=0, enable_checkpointing=False)  # PeriodicCheckpoint saves last.ckpt
    kwargs.update(user)
    if kwargs.get("strategy") == "ddp":
        # World model, actor and critic are separate backward passes; each touches only its own
        # parameters, so DDP must look for unused parameters.
        kwargs["strategy"] = DDPStrategy(find_unused_parameters=True)
    return kwargs


def fit(cfg, ckpt_path: str | None = None, callbacks=()):
    """Train ``cfg`` (resuming from ``ckpt_path`` if given); returns (module, trainer).

    The final state, replay buffer included, is saved to ``<run.dir>/checkpoints/last.ckpt``.
    """
    import lightning as L

    from lightning_dreamer.registry import get_algo

    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*IterableDataset.*__len__.*")
    warnings.filterwarnings("ignore", ".*no pre-optimization state was saved.*")
    warnings.filterwarnings("ignore", ".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*")
    trainer_kwargs = _trainer_kwargs(cfg, cfg.run.dir)
    trainer_kwargs["callbacks"] = trainer_kwargs["callbacks"] + list(callbacks)
    devices = trainer_kwargs.get("devices", 1)
    _set_threads(cfg, devices if isinstance(devices, int) and devices > 0 else 1)
    L.seed_everything(cfg.run.seed, verbose=False)
    algo = get_algo(cfg.algo)
    if getattr(algo, "single_process", False) and (devices not in (1, "1", "auto") or trainer_kwargs.get("num_nodes", 1) != 1):
        raise ConfigError(f"{cfg.algo} trains in a single process; drop --trainer.devices/--trainer.num_nodes (got devices={devices})")
    try:
        module = algo(to_dict(cfg))
    except ValueError as err:  # a config value the networks reject
        raise ConfigError(str(err)) from None
    trainer = L.Trainer(**trainer_kwargs)
    trainer.fit(module, ckpt_path=ckpt_path, weights_only=False)  # our checkpoints hold RNG states
    trainer.save_checkpoint(os.path.join(cfg.run.dir, "checkpoints", "last.ckpt"), weights_only=False)
    return module, trainer
