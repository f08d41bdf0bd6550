"""Lazy package attributes (PEP 562): a name is imported on first use, so importing a package stays light.

Used by the packages whose full import is costly (Numba kernels, the training stack) but whose callers
often need one light name: ``numbnn``, ``numbnn.datasets``, ``numbnn.inference``, ``numbnn.train``.
"""

import sys
from importlib import import_module


def lazy_getattr(package: str, names: dict[str, tuple[str, str | None]]):
    """The module ``__getattr__`` of ``package``: ``names`` maps a public name to (module, attribute),
    attribute None meaning the module itself; a resolved name is stored on the package, so each is
    looked up once."""

    def __getattr__(name: str):
        try:
            module_name, attribute = names[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        module = import_module(module_name)
        value = module if attribute is None else getattr(module, attribute)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
