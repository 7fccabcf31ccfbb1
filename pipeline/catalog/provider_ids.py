"""One provider id per company, whichever token source names it (pipeline/catalog/provider_aliases.csv).

The per-model indices count one vote per provider across the sources an index lists, so "together_ai"
(LiteLLM) and "Together" (OpenRouter) must both be `together`. The mapping is data; a name it does not list
becomes a slug of itself and stays a provider of its own (never merged into another by guess).
"""
from __future__ import annotations

import csv
import re
from functools import lru_cache
from pathlib import Path

from pipeline.paths import CATALOG_DIR

ALIASES_FILE = CATALOG_DIR / "provider_aliases.csv"


def provider_slug(name: str) -> str:
    """Lowercase, every run of other characters one '-': 'Nebius AI Studio' -> 'nebius-ai-studio',
    'together_ai' -> 'together-ai', 'Z.AI' -> 'z-ai'. It depends on the name alone, so it is stable."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


class ProviderIds:
    def __init__(self, path: Path = ALIASES_FILE):
        self._exact: dict[tuple[str, str], str] = {}
        self._prefixes: list[tuple[str, str, str]] = []  # (source, lowercase prefix, provider)
        with Path(path).open(newline="", encoding="utf-8") as handle:
            rows = csv.DictReader(line for line in handle if not line.startswith("#"))
            for row in rows:
                source, name, provider = (row["source"] or "").strip(), (row["name"] or "").strip(), (row["provider"] or "").strip()
                if not source or not name or provider != provider_slug(provider):
                    raise ValueError(f"{path}: row {row} needs a source, a name and a slug-shaped provider id")
                if name.endswith("*"):
                    self._prefixes.append((source, name[:-1].lower(), provider))
                    continue
                key = (source, name.lower())
                if self._exact.get(key, provider) != provider:
                    raise ValueError(f"{path}: {source} name {name!r} maps to two providers")
                self._exact[key] = provider
        # Longest prefix first, so that a more specific rule wins.
        self._prefixes.sort(key=lambda rule: -len(rule[1]))

    def provider_id(self, source: str, name: str) -> str:
        name = name.strip()
        exact = self._exact.get((source, name.lower()))
        if exact is not None:
            return exact
        for rule_source, prefix, provider in self._prefixes:
            if rule_source == source and name.lower().startswith(prefix):
                return provider
        return provider_slug(name)


@lru_cache(maxsize=1)
def default_provider_ids() -> ProviderIds:
    return ProviderIds()


def provider_id(source: str, name: str) -> str:
    """The provider id for `name` as `source` writes it."""
    return default_provider_ids().provider_id(source, name)
