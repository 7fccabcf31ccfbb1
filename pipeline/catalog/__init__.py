"""Canonical GPUs and models and the aliases that lead to them, read from the CSV files beside this module.

The catalog never guesses: a name that no alias row matches, or that two equally specific rows map to
different canonical ids, resolves to None and the caller records a rejection `unknown_instrument`.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from pipeline.paths import CATALOG_DIR


def gpu_name_key(name: str) -> str:
    """Spelling-insensitive key: 'RTX-A6000', 'RTX_A6000' and 'rtx a6000' are one name."""
    return re.sub(r"[^A-Z0-9]", "", name.upper())


def model_name_key(name: str) -> str:
    return name.strip().lower()


@dataclass(frozen=True)
class GpuAlias:
    name_key: str
    provider: str  # '' = any provider
    instance_type_pattern: re.Pattern | None  # searched, case-insensitive, in the instance type
    gpu_memory_mib: int | None  # per-GPU memory the source states, when the name alone is ambiguous
    canonical: str

    def matches(self, provider: str | None, instance_type: str | None, gpu_memory_mib: int | None) -> bool:
        if self.provider and self.provider != (provider or ""):
            return False
        if self.instance_type_pattern and not self.instance_type_pattern.search(instance_type or ""):
            return False
        if self.gpu_memory_mib is not None and self.gpu_memory_mib != gpu_memory_mib:
            return False
        return True

    @property
    def specificity(self) -> int:
        return sum((bool(self.provider), self.instance_type_pattern is not None, self.gpu_memory_mib is not None))


@dataclass(frozen=True)
class Band:
    """Plausible range of a normalised price; outside it a row is rejected as `outside_sanity_band`."""

    low: Decimal
    high: Decimal


@dataclass(frozen=True)
class Resolution:
    canonical: str | None
    detail: str  # why it failed, for the rejection


class Catalog:
    def __init__(self, folder: Path = CATALOG_DIR):
        self.folder = folder
        self.gpus: dict[str, dict] = {r["canonical_gpu"]: r for r in _read_csv(folder / "gpus.csv")}
        self.models: dict[str, dict] = {r["canonical_model"]: r for r in _read_csv(folder / "models.csv")}
        providers_file = folder / "providers.csv"
        self.providers: dict[str, dict] = (
            {r["provider"]: r for r in _read_csv(providers_file)} if providers_file.exists() else {}
        )
        self._gpu_aliases: dict[str, list[GpuAlias]] = {}
        for row in _read_csv(folder / "gpu_aliases.csv"):
            canonical = row["canonical_gpu"]
            if canonical not in self.gpus:
                raise ValueError(f"gpu_aliases.csv maps {row['name']!r} to {canonical!r}, which gpus.csv lacks")
            alias = GpuAlias(
                name_key=gpu_name_key(row["name"]),
                provider=row.get("provider", "").strip(),
                instance_type_pattern=re.compile(row["instance_type_pattern"], re.I)
                if row.get("instance_type_pattern", "").strip()
                else None,
                gpu_memory_mib=int(row["gpu_memory_mib"]) if row.get("gpu_memory_mib", "").strip() else None,
                canonical=canonical,
            )
            self._gpu_aliases.setdefault(alias.name_key, []).append(alias)
        self._model_aliases: dict[str, str] = {}
        for row in _read_csv(folder / "model_aliases.csv"):
            canonical = row["canonical_model"]
            if canonical not in self.models:
                raise ValueError(f"model_aliases.csv maps {row['alias']!r} to {canonical!r}, which models.csv lacks")
            key = model_name_key(row["alias"])
            if self._model_aliases.get(key, canonical) != canonical:
                raise ValueError(f"model_aliases.csv maps {row['alias']!r} to two models")
            self._model_aliases[key] = canonical
        for canonical in self.models:  # a canonical id is an alias of itself
            self._model_aliases.setdefault(model_name_key(canonical), canonical)

    def resolve_gpu(
        self,
        name: str,
        *,
        provider: str | None = None,
        instance_type: str | None = None,
        gpu_memory_mib: int | None = None,
    ) -> Resolution:
        candidates = [
            a
            for a in self._gpu_aliases.get(gpu_name_key(name), [])
            if a.matches(provider, instance_type, gpu_memory_mib)
        ]
        if not candidates:
            known = bool(self._gpu_aliases.get(gpu_name_key(name)))
            why = "no alias rule fits this instance" if known else "name not in gpu_aliases.csv"
            return Resolution(None, f"GPU {name!r} ({why}; instance {instance_type!r}, memory {gpu_memory_mib} MiB)")
        best = max(a.specificity for a in candidates)
        chosen = {a.canonical for a in candidates if a.specificity == best}
        if len(chosen) > 1:
            return Resolution(None, f"GPU {name!r} is ambiguous: {sorted(chosen)}; instance {instance_type!r}")
        return Resolution(chosen.pop(), "")

    def resolve_model(self, name: str) -> Resolution:
        canonical = self._model_aliases.get(model_name_key(name))
        if canonical is None:
            return Resolution(None, f"model {name!r} not in model_aliases.csv")
        return Resolution(canonical, "")

    def segment(self, provider: str) -> str | None:
        row = self.providers.get(provider)
        return row["segment"] if row and row.get("segment") else None

    def band(self, kind: str, instrument: str) -> Band | None:
        row = (self.gpus if kind == "gpu" else self.models).get(instrument)
        if row is None:
            return None
        unit = "usd_per_gpu_hour" if kind == "gpu" else "usd_per_mtok"
        low, high = row.get(f"min_{unit}", "").strip(), row.get(f"max_{unit}", "").strip()
        if not low or not high:
            return None
        return Band(Decimal(low), Decimal(high))


def _read_csv(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [
            {k: (v or "").strip() for k, v in row.items()}
            for row in csv.DictReader(line for line in handle if not line.startswith("#"))
        ]


@lru_cache(maxsize=1)
def default_catalog() -> Catalog:
    return Catalog()
