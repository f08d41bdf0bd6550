"""Training: the data pipeline, the run's configuration and recipe hook, the epoch loop, evaluation.

>>> from numbnn.train import fit, make_config, load_split
>>> result = fit(model, make_config("bnn-small", epochs=2), load_split("train"), load_split("test"))

Names resolve lazily, so importing :mod:`numbnn.train.config` (the CLI does) stays light.
"""

from numbnn._lazy import lazy_getattr

_LAZY = {
    "TrainConfig": ("numbnn.train.config", "TrainConfig"),
    "make_config": ("numbnn.train.config", "make_config"),
    "model_recipe": ("numbnn.train.config", "model_recipe"),
    "Augmentation": ("numbnn.train.data", "Augmentation"),
    "BatchIterator": ("numbnn.train.data", "BatchIterator"),
    "load_split": ("numbnn.train.data", "load_split"),
    "normalize": ("numbnn.train.data", "normalize"),
    "Evaluation": ("numbnn.evaluation", "Evaluation"),
    "evaluate": ("numbnn.train.float_evaluation", "evaluate"),
    "FitResult": ("numbnn.train.loop", "FitResult"),
    "fit": ("numbnn.train.loop", "fit"),
    "TrainingState": ("numbnn.train.checkpoint", "TrainingState"),
    "read_training_state": ("numbnn.train.checkpoint", "read_training_state"),
    "set_threads": ("numbnn.threads", "set_threads"),
}


__getattr__ = lazy_getattr(__name__, _LAZY)

__all__ = sorted(_LAZY)
