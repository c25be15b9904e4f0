"""Compression passes, registered in one place and looked up by name."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgekit.errors import ConfigError
from edgekit.passes.cleanup import Cleanup, CleanupConfig
from edgekit.passes.fp16 import ConvertFp16, Fp16Config
from edgekit.passes.prune import PruneConfig, PruneMagnitude
from edgekit.passes.quantize_dynamic import QuantizeDynamic, QuantizeDynamicConfig
from edgekit.passes.quantize_static import QuantizeStatic, QuantizeStaticConfig
from edgekit.passes.quantize_weight_only import (
    QuantizeWeight4,
    QuantizeWeight4Config,
    QuantizeWeight8,
    QuantizeWeight8Config,
)
from edgekit.passes.validate import Validate, ValidateConfig

if TYPE_CHECKING:
    from edgekit.passes.base import Pass, PassConfig

#: every pass, by name; the CLI, the report and the tests read this one table
REGISTRY: dict[str, type[Pass]] = {
    Validate.name: Validate,
    Cleanup.name: Cleanup,
    QuantizeDynamic.name: QuantizeDynamic,
    QuantizeStatic.name: QuantizeStatic,
    ConvertFp16.name: ConvertFp16,
    QuantizeWeight4.name: QuantizeWeight4,
    QuantizeWeight8.name: QuantizeWeight8,
    PruneMagnitude.name: PruneMagnitude,
}

#: passes that produce a compressed variant (``--mode``), as opposed to preparation passes
VARIANT_PASSES = (
    QuantizeStatic.name,
    QuantizeDynamic.name,
    ConvertFp16.name,
    QuantizeWeight8.name,
    QuantizeWeight4.name,
    PruneMagnitude.name,
)


def create(name: str, config: PassConfig | None = None) -> Pass:
    """Instantiate a registered pass by name."""
    try:
        cls = REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown pass '{name}': choose from {', '.join(REGISTRY)}") from None
    return cls(config)  # type: ignore[call-arg]


__all__ = [
    "REGISTRY",
    "VARIANT_PASSES",
    "Cleanup",
    "CleanupConfig",
    "ConvertFp16",
    "Fp16Config",
    "PruneConfig",
    "PruneMagnitude",
    "QuantizeDynamic",
    "QuantizeDynamicConfig",
    "QuantizeStatic",
    "QuantizeStaticConfig",
    "QuantizeWeight4",
    "QuantizeWeight4Config",
    "QuantizeWeight8",
    "QuantizeWeight8Config",
    "Validate",
    "ValidateConfig",
    "create",
]
