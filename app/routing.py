"""Model routing: which producer answers a request's ``model``.

The table is ``SCOPESTREAM_MODELS`` (``pattern=producer,...``): patterns are shell-style
(``gpt-4o*``, ``*``), tried in the order given, and the first match wins. Without a table,
every producer answers under its own name (``echo``, ``synthetic``, the operator's), and
when an upstream is configured everything else goes to it: first the names of
``SCOPESTREAM_UPSTREAM_MODEL_MAP``, then any other name (``*``), under that name.

The router only names the producer; the upstream producer maps the model name itself, so
a native run (``{"producer": "upstream", "input": {"model": ...}}``) is mapped the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase

__all__ = ["ModelRouter", "Route"]

_WILDCARDS = frozenset("*?[")


@dataclass(frozen=True, slots=True)
class Route:
    pattern: str
    producer: str

    @property
    def exact(self) -> bool:
        return not _WILDCARDS.intersection(self.pattern)

    def matches(self, model: str) -> bool:
        return model == self.pattern if self.exact else fnmatchcase(model, self.pattern)


class ModelRouter:
    def __init__(self, routes: Iterable[Route], *, known_models: Iterable[str] = ()) -> None:
        self.routes = tuple(routes)
        #: Names worth listing under a pattern route (the upstream's mapped models).
        self._known = tuple(known_models)

    @classmethod
    def build(
        cls,
        table: Mapping[str, str],
        producers: Iterable[str],
        *,
        upstream: str | None = None,
        model_map: Mapping[str, str] | None = None,
    ) -> ModelRouter:
        """The router for a settings table; :class:`ValueError` naming a route whose
        producer does not exist. ``upstream`` is the upstream producer's name when one is
        configured, ``model_map`` its model-name mapping."""
        names = list(producers)
        known = list(model_map or {})
        if table:
            for pattern, producer in table.items():
                if producer not in names:
                    raise ValueError(
                        f"{pattern}={producer}: no producer {producer!r} "
                        f"(known: {', '.join(sorted(names))})"
                    )
            return cls((Route(p, name) for p, name in table.items()), known_models=known)
        routes = [Route(name, name) for name in names if name != upstream]
        if upstream is not None:
            routes += [Route(model, upstream) for model in known]
            routes.append(Route("*", upstream))
        return cls(routes, known_models=known)

    def resolve(self, model: str) -> str | None:
        """The producer for ``model``, or None when no route matches."""
        for route in self.routes:
            if route.matches(model):
                return route.producer
        return None

    def models(self) -> list[str]:
        """What ``GET /v1/models`` lists: every exact route, and every mapped upstream
        model a pattern route admits, in table order, each once."""
        out: dict[str, None] = {}
        for route in self.routes:
            if route.exact:
                out.setdefault(route.pattern)
            else:
                for model in self._known:
                    if route.matches(model) and self.resolve(model) == route.producer:
                        out.setdefault(model)
        return list(out)
