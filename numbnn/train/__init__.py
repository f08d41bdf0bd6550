"""Training: the data pipeline, the run's configuration and recipe hook, the epoch loop, evaluation.

>>> from numbnn.train import fit, make_config, load_split
>>> result = fit(model, make_config("bnn-small", epochs=2), load_split("train"), load_split("test"))

Names resolve lazily, so importing :mod:`numbnn.train.config` (the CLI does) stays light.
"""

from numbnn._lazy import lazy_getattr

_LAZY = {
    "TrainConfig": "numbnn.train.config",
    "make_config": "numbnn.train.config",
    "model_recipe": "numbnn.train.config",
    "Augmentation": "numbnn.train.data",
    "BatchIterator": "numbnn.train.data",
    "load_split": "numbnn.train.data",
    "normalize": "numbnn.train.data",
    "Evaluation": "numbnn.evaluation",
    "evaluate": "numbnn.train.evaluate",
    "FitResult": "numbnn.train.loop",
    "fit": "numbnn.train.loop",
    "TrainingState": "numbnn.train.checkpoint",
    "read_training_state": "numbnn.train.checkpoint",
    "set_threads": "numbnn.threads",
}


__getattr__ = lazy_getattr(__name__, {name: (module, name) for name, module in _LAZY.items()})

__all__ = sorted(_LAZY)
