"""The model zoo: one module per paper, each reading like the paper's block diagram.

Importing this package registers every model; build one with :func:`build_model`.
"""

from numbnn.models.registry import available_models, build_model, model_spec, register_model

__all__ = ["available_models", "build_model", "model_spec", "register_model"]
