"""The registry of producers, by name. Belongs to one app; built from settings."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from engine import Producer

__all__ = ["ProducerRegistry", "ProducerSpec"]


@dataclass(frozen=True, slots=True)
class ProducerSpec:
    name: str
    producer: Producer
    #: Validates the run's ``input`` before the run starts (a 400 naming the field if not).
    input_model: type[BaseModel] | None = None
    description: str = ""
    #: Its input is a whole Chat Completions request (model, messages with their parts,
    #: tools, sampling), which the chat routes build from theirs; otherwise they give it
    #: its parameters from ``metadata`` and the conversation as text ``messages``.
    chat_request: bool = False


class ProducerRegistry:
    def __init__(self, specs: list[ProducerSpec]) -> None:
        self._specs = {spec.name: spec for spec in specs}

    @classmethod
    def from_paths(cls, builtins: list[ProducerSpec], paths: Mapping[str, str]) -> ProducerRegistry:
        """Built-ins plus operator producers named by ``module:attribute`` import paths.

        The attribute may be a :class:`ProducerSpec` or a plain producer function. Raises
        ``ValueError`` naming the producer whose path does not import.
        """
        specs = list(builtins)
        for name, path in paths.items():
            module_name, _, attribute = path.partition(":")
            try:
                target: Any = getattr(importlib.import_module(module_name), attribute)
            except (ImportError, AttributeError) as exc:
                raise ValueError(f"producer {name!r}: cannot import {path!r}: {exc}") from exc
            if isinstance(target, ProducerSpec):
                specs.append(
                    ProducerSpec(
                        name,
                        target.producer,
                        target.input_model,
                        target.description,
                        target.chat_request,
                    )
                )
            elif callable(target):
                specs.append(ProducerSpec(name, target, None, (target.__doc__ or "").strip()))
            else:
                raise ValueError(f"producer {name!r}: {path!r} is not callable")
        return cls(specs)

    def get(self, name: str) -> ProducerSpec | None:
        return self._specs.get(name)

    def names(self) -> list[str]:
        return sorted(self._specs)

    def specs(self) -> list[ProducerSpec]:
        return [self._specs[name] for name in self.names()]
