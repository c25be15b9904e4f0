"""edgekit-runtime: the on-device side of edgekit. It imports nothing from the host toolkit."""

__version__ = "0.1.0"

__all__ = ["__version__"]
