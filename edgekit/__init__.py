"""edgekit: take a trained model to a fleet of small devices and keep it healthy there.

The host toolkit. Heavy libraries (onnxruntime, onnx, torch) are imported lazily by the
modules that need them, so ``import edgekit`` and ``edgekit --help`` stay fast.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
