"""Loading a run's config: YAML files and dotted overrides merged onto the schema of the chosen
algorithm (config.py) and validated. The one path every run takes, fresh or resumed.

It sits above the algorithms (it asks the registry for the algorithm's model config) and the
environments (it checks that the env exists), so that config.py, which they import, imports
neither.
"""

from __future__ import annotations

from typing import Any, cast

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lightning_dreamer.config import (
    Config,
    EnvConfig,
    ReplayConfig,
    RunConfig,
    check_relations,
    closest,
    explain,
    read_layers,
    validate_trainer,
    check_limits,
)
from lightning_dreamer.envs import validate_env_config
from lightning_dreamer.errors import ConfigError
from lightning_dreamer.registry import get_algo, list_algos


def load_config(paths: list[str] | None = None, overrides: list[str] | None = None,
                base: dict[str, Any] | None = None) -> DictConfig:
    """Merge ``base`` (a stored config, e.g. from a checkpoint), YAML files and dotted overrides
    onto the schema of the chosen algorithm, and validate the result.

    The one path every run takes, fresh or resumed. Raises ConfigError with a one-line explanation
    for any unknown key, ill-typed or out-of-range value, inconsistent pair of values, unreadable
    file, unknown algorithm or environment, or Trainer option this machine cannot honour.
    """
    layers = ([OmegaConf.create(base)] if base is not None else []) + read_layers(list(paths or []))
    try:
        layers.append(OmegaConf.from_dotlist(list(overrides or [])))
    except Exception as err:
        raise ConfigError(f"cannot parse overrides {overrides}: {str(err).splitlines()[0]}") from None
    raw = cast(DictConfig, OmegaConf.merge(*layers) if layers else OmegaConf.create())

    algo_name = raw.get("algo", Config.algo)
    try:
        algo = get_algo(algo_name)
    except (KeyError, TypeError):
        names = list_algos()
        raise ConfigError(f"unknown algo '{algo_name}'.{closest(str(algo_name), names)} Allowed: {', '.join(names)}") from None

    schema = OmegaConf.structured(Config(algo=algo_name, model=algo.config_class()))
    try:
        cfg = cast(DictConfig, OmegaConf.merge(schema, raw))
        # Resolve once so that interpolation errors show up now, not mid-training.
        OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as err:
        raise explain(err, schema) from None
    for section, cls in (("env", EnvConfig), ("replay", ReplayConfig), ("run", RunConfig), ("model", algo.config_class)):
        check_limits(section, cfg[section], getattr(cls, "LIMITS", {}))
    check_relations(cfg)
    validate_trainer(cast(dict, OmegaConf.to_container(cfg.trainer, resolve=True)))
    validate_env_config(cfg.env)
    OmegaConf.set_struct(cfg, True)
    return cfg


def config_from_dict(data: dict[str, Any]) -> DictConfig:
    """Rebuild the config stored with a module (its hyperparameters): already validated when the
    run started, so only the schema is applied (no hardware checks: a checkpoint made on a GPU
    machine loads on a CPU one)."""
    algo = get_algo(data.get("algo", Config.algo))
    schema = OmegaConf.structured(Config(algo=data.get("algo", Config.algo), model=algo.config_class()))
    try:
        cfg = cast(DictConfig, OmegaConf.merge(schema, OmegaConf.create(data)))
    except OmegaConfBaseException as err:
        raise explain(err, schema) from None
    OmegaConf.set_struct(cfg, True)
    return cfg
