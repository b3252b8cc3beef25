"""Algorithm registry: ``@register_algo("dreamer_v2")`` on a LightningModule class.

A registered class exposes ``config_class`` (a dataclass: the schema of the ``model`` section).
Algorithm modules are imported lazily so that ``import lightning_dreamer`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for the annotations only: the registry imports algorithms by name, at run time
    from lightning_dreamer.algos.base import RLModule

_ALGOS: dict[str, type[RLModule]] = {}
# name -> module that registers it on import
_KNOWN = {
    "dreamer_v1": "lightning_dreamer.algos.dreamer_v1",
    "dreamer_v2": "lightning_dreamer.algos.dreamer_v2",
    "world_models": "lightning_dreamer.algos.world_models",
}


def register_algo(name: str):
    def wrap(cls):
        _ALGOS[name] = cls
        cls.algo_name = name
        return cls

    return wrap


def get_algo(name: str) -> type[RLModule]:
    if name not in _ALGOS and name in _KNOWN:
        importlib.import_module(_KNOWN[name])
    if name not in _ALGOS:
        raise KeyError(name)
    return _ALGOS[name]


def list_algos() -> list[str]:
    return sorted(set(_KNOWN) | set(_ALGOS))
