"""Builds the training manager from the kernel's parts."""

from __future__ import annotations

from collections.abc import Callable

from llmos.config import Config
from llmos.storage.db import Database
from llmos.storage.training import TrainingStore
from llmos.training.manager import DatasetFiles, MemoryGate, ModelRegistry, TrainingManager, UsageSink


def build_training(
    config: Config,
    database: Database,
    registry: ModelRegistry,
    datasets: DatasetFiles,
    memory: MemoryGate,
    *,
    cores: int,
    inference_active: Callable[[], int],
    record_usage: UsageSink | None = None,
) -> TrainingManager:
    return TrainingManager(
        config.training,
        store=TrainingStore(database),
        registry=registry,
        datasets=datasets,
        memory=memory,
        work_root=config.paths.home / "training",
        cores=cores,
        inference_waiting=inference_active,
        record_usage=record_usage,
    )
