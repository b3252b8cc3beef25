"""lightning_dreamer: model-based RL from pixels (World Models, Dreamer V1, Dreamer V2) on
PyTorch Lightning and TorchRL."""

__version__ = "0.1.0"

from lightning_dreamer import zoo  # noqa: E402,F401 - ld.zoo.load(name): cheap (standard library only at import)
