"""Producers the service hosts: the built-ins and the operator's, by name."""

from ._registry import ProducerRegistry, ProducerSpec
from .echo import echo
from .synthetic import SyntheticInput, synthetic

__all__ = ["ProducerRegistry", "ProducerSpec", "SyntheticInput", "echo", "synthetic"]
