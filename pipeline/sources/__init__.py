"""The registry of sources. Each source is one module with the same small interface:

    SOURCE_ID: str                    short id used in the warehouse and on the command line
    KIND: str                         "gpu" or "token"
    DESCRIPTION: str
    def requests() -> list[FetchRequest]                    what a live collection fetches
    def fetch(client, request, clock) -> FetchedBody | list[FetchedBody]
                                                            network only; no parsing. A paged API returns
                                                            every page, all stamped with one clock() call
    def parse(raw: bytes, ctx: ParseContext) -> ParseResult pure: bytes in, records out
    def context_for_file(path, observed_at) -> ParseContext  how `tsi parse` reads a saved body

Adding a source is one module here plus its fixtures, and one line in SOURCES.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType


@dataclass(frozen=True)
class FetchRequest:
    source: str
    url: str
    provider: str | None = None  # for bodies that do not name their provider

    @property
    def label(self) -> str:
        """Short and readable, for run names and logs: the provider, or the URL's last meaningful part."""
        if self.provider:
            return f"{self.source}-{self.provider}"
        parts = [p for p in self.url.split("?")[0].split("/") if p and p not in {"endpoints", "vms.csv"}]
        return f"{self.source}-{parts[-1] if parts else 'root'}"


def _load() -> dict[str, ModuleType]:
    from pipeline.sources import deepseek_pricing, ecb_fx, litellm, llm_prices, openrouter, openrouter_endpoints, skypilot
    from pipeline.sources import azure, html_tables, vast

    return {module.SOURCE_ID: module for module in (
        skypilot, openrouter, openrouter_endpoints, litellm, llm_prices, deepseek_pricing, ecb_fx,
        vast, azure, html_tables,
    )}


SOURCES: dict[str, ModuleType] = _load()


# A body larger than its source accepts from the network is refused before it is read whole (a hostile 100 MB
# page cost minutes and gigabytes to parse); a source without a cap of its own (MAX_BODY_BYTES) gets this one.
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024


def max_body_bytes(source: ModuleType) -> int:
    """The largest body the source's fetch accepts (its MAX_BODY_BYTES, or MAX_BYTES)."""
    return getattr(source, "MAX_BODY_BYTES", getattr(source, "MAX_BYTES", DEFAULT_MAX_BODY_BYTES))


def read_saved_body(path: Path, source: ModuleType) -> bytes:
    """A body saved to a file (`tsi parse`, an import), refused in one line when it is larger than the source's
    cap on a fetched body: the same bound wherever a body enters."""
    cap = max_body_bytes(source)
    with Path(path).open("rb") as handle:
        raw = handle.read(cap + 1)
    if len(raw) > cap:
        raise ValueError(f"{path}: the body is larger than the {cap:,} bytes that source {source.SOURCE_ID} "
                         "accepts; refused unread")
    return raw


class UnknownSourceError(KeyError):
    pass


def get_source(source_id: str) -> ModuleType:
    try:
        return SOURCES[source_id]
    except KeyError:
        raise UnknownSourceError(
            f"unknown source {source_id!r}; known sources: {', '.join(sorted(SOURCES))}"
        ) from None
