"""The model zoo: one module per paper, each reading like the paper's block diagram.

Importing this package registers every model; build one with :func:`build_model`.
"""

from numbnn.models.registry import available_models, build_model, model_spec, register_model

from numbnn.models import bnn_small  # noqa: F401,E402  (registers bnn-small)
from numbnn.models import float_cnn  # noqa: F401,E402  (registers float-cnn)
from numbnn.models import reactnet  # noqa: F401,E402  (registers reactnet-a)
from numbnn.models import reactxgb  # noqa: F401,E402  (registers reactxgb)
from numbnn.models import ftbnn  # noqa: F401,E402  (registers ftbnn)
from numbnn.models import rbnet  # noqa: F401,E402  (registers rbnet)
from numbnn.models import pokebnn  # noqa: F401,E402  (registers pokebnn)
from numbnn.models import resnet  # noqa: F401,E402  (registers resnet-20)

__all__ = ["available_models", "build_model", "model_spec", "register_model"]
