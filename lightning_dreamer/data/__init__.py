"""Replay (TorchRL), the batch stream the Trainer reads, collection and its pacing."""

from lightning_dreamer.data.collector import Collector, TrainRatio, run_episodes
from lightning_dreamer.data.replay import Replay, ReplayBatches

__all__ = ["Collector", "TrainRatio", "run_episodes", "Replay", "ReplayBatches"]
