"""Training: the data pipeline, the run's configuration and recipe hook, the epoch loop, evaluation."""

from numbnn.train.config import TrainConfig, make_config, model_recipe
from numbnn.train.data import Augmentation, BatchIterator, normalize

__all__ = ["Augmentation", "BatchIterator", "TrainConfig", "make_config", "model_recipe", "normalize"]
