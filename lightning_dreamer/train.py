"""Build the Lightning Trainer for a config and run ``fit``: the one place that does it."""

from __future__ import annotations

import os
import warnings
from typing import Any, cast

from lightning_dreamer.config import to_dict
from lightning_dreamer.errors import ConfigError


def _set_threads(cfg, processes: int) -> None:
    import torch

    threads = cfg.run.threads or max(1, (os.cpu_count() or 1) // max(1, processes))
    torch.set_num_threads(threads)


def _keep_freed_memory(setting: str, device_type: str) -> None:
    """``run.keep_freed_memory``: auto = on when the update runs on the CPU (where it is arithmetic on
    host tensors); says what it did, once per run."""
    from lightning_dreamer.hardware import keep_freed_memory, wants_kept_memory

    if not wants_kept_memory(setting, device_type):
        return
    kept = keep_freed_memory()
    if os.environ.get("LOCAL_RANK", "0") == "0":
        why = "auto: CPU training" if setting == "auto" else "from the config"
        print(f"host memory: freed memory kept for reuse ({why}; run.keep_freed_memory=off returns it to the OS)" if kept
              else "host memory: run.keep_freed_memory needs glibc's malloc (Linux); left as it is", flush=True)


def _resolve_precision(kwargs: dict) -> None:
    """``precision: auto`` (or none given) -> what this machine runs fastest (lightning_dreamer.hardware)."""
    from lightning_dreamer.hardware import auto_precision

    chosen = kwargs.get("precision", "auto")
    if str(chosen) == "auto":
        chosen, why = auto_precision(str(kwargs.get("accelerator", "auto")))
        kwargs["precision"] = chosen
        note = f"precision: {chosen} (auto: {why}; set trainer.precision to override)"
    else:
        note = f"precision: {chosen} (from the config)"
    if os.environ.get("LOCAL_RANK", "0") == "0":
        print(note, flush=True)


def _trainer_kwargs(cfg, run_dir: str, resume_step: int | None = None):
    from lightning.pytorch.loggers import Logger, TensorBoardLogger, WandbLogger
    from lightning.pytorch.strategies import DDPStrategy
    from omegaconf import OmegaConf

    from lightning_dreamer.callbacks import EvalCallback, PeriodicCheckpoint, ProgressBar, VideoCallback, guard_logger
    from lightning_dreamer.callbacks.csv_logger import AppendingCSVLogger
    from lightning_dreamer.files import AtomicCheckpointIO

    loggers: list[Logger] = []
    if "csv" in cfg.run.loggers:
        # Written at every log call: Lightning flushes only when (step + 1) % 100 == 0, which steps
        # logged every run.log_every updates (or episodes, evaluations) may never hit.
        loggers.append(AppendingCSVLogger(run_dir, name="logs", version="csv", flush_logs_every_n_steps=1,
                                          resume_step=resume_step))
    if "tensorboard" in cfg.run.loggers:
        # purge_step: events the stopped run wrote after its checkpoint are dropped, not drawn twice.
        extra: dict[str, Any] = {"purge_step": resume_step + 1} if resume_step is not None else {}
        loggers.append(TensorBoardLogger(run_dir, name="logs", version="tensorboard", default_hp_metric=False, **extra))
    if "wandb" in cfg.run.loggers:
        os.environ.setdefault("WANDB_MODE", "offline")  # no account, no prompt, unless the user set a server
        os.environ.setdefault("WANDB_SILENT", "true")
        loggers.append(WandbLogger(save_dir=run_dir, project="lightning_dreamer", name=os.path.basename(run_dir.rstrip("/"))))
    loggers = [guard_logger(logger) for logger in loggers]
    callbacks = [
        PeriodicCheckpoint(os.path.join(run_dir, "checkpoints", "last.ckpt"), cfg.run.checkpoint_every),
        EvalCallback(cfg.run.eval_every, cfg.run.eval_episodes),
        VideoCallback(cfg.run.video_every),
    ]
    user = cast(dict, OmegaConf.to_container(cfg.trainer, resolve=True))
    if user.get("enable_progress_bar", True):
        callbacks.append(ProgressBar())
    kwargs = dict(max_epochs=-1, logger=loggers or False, callbacks=callbacks, default_root_dir=run_dir,
                  log_every_n_steps=cfg.run.log_every, num_sanity_val_steps=0, use_distributed_sampler=False,
                  limit_val_batches=0, enable_checkpointing=False,  # PeriodicCheckpoint saves last.ckpt
                  plugins=[AtomicCheckpointIO()])
    kwargs.update(user)
    _resolve_precision(kwargs)
    if kwargs.get("strategy") == "ddp":
        # World model, actor and critic are separate backward passes; each touches only its own
        # parameters, so DDP must look for unused parameters.
        kwargs["strategy"] = DDPStrategy(find_unused_parameters=True)
    return kwargs


# ("Restoring states from the checkpoint": our "resumed:" line says what was restored.)
_NOISE = ("GPU available:", "TPU available:", "HPU available:", "💡 Tip", "LitLogger", "litlogger", "Restoring states from")


def _not_noise(record) -> bool:
    message = record.getMessage()
    return not any(part in message for part in _NOISE)


def _quiet() -> None:
    """Silence what a user cannot act on: Lightning's adverts and hardware notes (our precision
    line and ``doctor`` say more), torchrl's INFO lines, and warnings about our deliberate choices."""
    import logging

    for pattern in (".*does not have many workers.*", ".*IterableDataset.*__len__.*", ".*no pre-optimization state was saved.*",
                    ".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*", ".*precision.*is not supported by the model summary.*"):
        warnings.filterwarnings("ignore", pattern)
    logging.getLogger("torchrl").setLevel(logging.WARNING)
    os.environ.setdefault("RL_LOGGING_LEVEL", "WARNING")  # torchrl's level in env worker processes too
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero", "lightning.pytorch.accelerators.cuda"):
        logger = logging.getLogger(name)
        if _not_noise not in logger.filters:
            logger.addFilter(_not_noise)


def _check_weights(module, state_dict: dict, path: str, verb: str = "resume") -> None:
    """One line if the checkpoint's weights do not fit the module this config builds."""
    own = module.state_dict()
    for key in sorted(set(own) | set(state_dict)):
        if key not in own or key not in state_dict or own[key].shape != state_dict[key].shape:
            theirs = tuple(state_dict[key].shape) if key in state_dict else "absent"
            ours = tuple(own[key].shape) if key in own else "absent"
            raise ConfigError(f"cannot {verb} {path}: its weights do not fit this config's model ({key}: checkpoint "
                              f"{theirs}, config {ours}); use the model.* sizes it was trained with")


def build_agent(cfg):
    """The agent of a validated run config (``config.load_config``), with the run attached: its
    ``EnvSpec`` is read off the env once (cached), the agent itself builds none."""
    from lightning_dreamer.algos.base import spec_for
    from lightning_dreamer.registry import get_algo

    spec = spec_for(cfg.env)
    try:
        module = get_algo(cfg.algo)(spec, **to_dict(cfg)["model"])
    except ValueError as err:  # a config value the networks reject
        raise ConfigError(str(err)) from None
    module.attach_run(cfg)
    return module


def initial_weights(init: str) -> dict:
    """The weights ``--init`` names: ``zoo:NAME`` (hash checked) or a checkpoint path."""
    from lightning_dreamer.checkpoint import load_agent

    return load_agent(init)[0].state_dict()


def fit(cfg, ckpt_path: str | None = None, callbacks=(), ckpt: dict | None = None, init: str | None = None):
    """Train ``cfg`` (resuming from ``ckpt_path`` if given); returns (module, trainer).

    ``ckpt`` is the checkpoint at ``ckpt_path`` when the caller has read it already: its weights are
    checked against the config before any work, and the logs are cut back to its step, so that
    metrics written after it by the run that stopped are not repeated. The final state, replay
    buffer included, is saved to ``<run.dir>/checkpoints/last.ckpt``; a run stopped by a signal
    has saved it at the stop (``module.stop_signal`` names the signal).
    """
    import lightning as L
    import torch

    from lightning_dreamer.callbacks import save_run
    from lightning_dreamer.registry import get_algo

    _quiet()
    resume_step = None
    if ckpt is not None:
        state = ckpt.get("lightning_dreamer", {})
        resume_step = state.get("log_step", state.get("updates"))
    trainer_kwargs = _trainer_kwargs(cfg, cfg.run.dir, resume_step)
    trainer_kwargs["callbacks"] = trainer_kwargs["callbacks"] + list(callbacks)
    devices = trainer_kwargs.get("devices", 1)
    _set_threads(cfg, devices if isinstance(devices, int) and devices > 0 else 1)
    algo = get_algo(cfg.algo)
    if getattr(algo, "single_process", False) and (devices not in (1, "1", "auto") or trainer_kwargs.get("num_nodes", 1) != 1):
        raise ConfigError(f"{cfg.algo} trains in a single process; drop --trainer.devices/--trainer.num_nodes (got devices={devices})")
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    try:
        trainer = L.Trainer(**trainer_kwargs)
    except (MisconfigurationException, ValueError, TypeError, RuntimeError) as err:
        raise ConfigError(f"bad trainer options: {str(err).strip().splitlines()[0]}") from None
    if trainer.strategy.root_device.type == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32 matmuls: fp32 range, tensor-core speed
    _keep_freed_memory(cfg.run.keep_freed_memory, trainer.strategy.root_device.type)
    L.seed_everything(cfg.run.seed, verbose=False)
    module = build_agent(cfg)
    if ckpt is not None:
        _check_weights(module, ckpt["state_dict"], str(ckpt_path))
    if init:  # fine-tuning: a new run that starts from trained weights
        weights = initial_weights(init)
        _check_weights(module, weights, init, verb="start from")
        module.load_state_dict(weights)
        print(f"initialised from {init}", flush=True)
    trainer.fit(module, ckpt_path=ckpt_path, weights_only=False)  # our checkpoints hold RNG states
    if not module.stop_signal:
        save_run(trainer, os.path.join(cfg.run.dir, "checkpoints", "last.ckpt"))
    return module, trainer
