"""The model zoo: one module per paper, each reading like the paper's block diagram.

Importing this package registers every model; build one with :func:`build_model`.
"""

from numbnn.models.registry import available_models, build_model, model_spec, register_model

from numbnn.models import reactnet  # noqa: F401,E402  (registers reactnet-a)
from numbnn.models import reactxgb  # noqa: F401,E402  (registers reactxgb)

__all__ = ["available_models", "build_model", "model_spec", "register_model"]
