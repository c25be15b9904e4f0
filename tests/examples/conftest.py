"""The runtime tests' signed bundle and keys, for the examples' tests."""

from tests.runtime.conftest import keys, signed_bundle

__all__ = ["keys", "signed_bundle"]
