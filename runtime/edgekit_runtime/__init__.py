"""edgekit-runtime: the on-device side of edgekit. It imports nothing from the host toolkit."""

from edgekit_runtime.model import LoadOptions, Model, load

__version__ = "0.1.0"

__all__ = ["LoadOptions", "Model", "__version__", "load"]
