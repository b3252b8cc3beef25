"""Replay (TorchRL), the batch stream the Trainer reads, collection and its pacing."""

from lightning_dreamer.data.collector import BatchedCollector, Collector, TrainRatio, run_episodes
from lightning_dreamer.data.replay import Replay, ReplayBatches

__all__ = ["BatchedCollector", "Collector", "TrainRatio", "run_episodes", "Replay", "ReplayBatches"]
