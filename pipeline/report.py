"""What a run tells people: the day's fixings as table rows, and the sources that failed, in Markdown.

Pure functions of the run's results, so the flows only hand them to Prefect's artifacts.
"""
from __future__ import annotations

from decimal import Decimal

UNIT = {"gpu": "USD/GPU-hour", "token": "USD/Mtok"}


def fixings_table(fixings: list) -> list[dict]:
    """One row per fixing (pipeline.fixing.Fixing). Values are text: exact decimals, as published."""
    rows = []
    for f in sorted(fixings, key=lambda f: f.definition.id):
        rows.append({
            "index_id": f.definition.id,
            "fixing_date": f.fixing_date.isoformat(),
            "revision": f.revision,
            "status": f.status,
            "value": _text(f.value),
            "unit": UNIT.get(f.definition.instrument_kind, ""),
            "n_providers": f.n_providers,
            "n_observations": f.n_observations,
            "new": bool(f.written),
        })
    return rows


def failures_markdown(title: str, failed: list[dict], parse_failures: dict[str, str]) -> str:
    """The requests that gave no body and the bodies that could not be read, and why; says so when none."""
    lines = [f"# {_cell(title)}", ""]
    if not failed and not parse_failures:
        lines.append("Every source answered and every body was read.")
        return "\n".join(lines) + "\n"
    if failed:
        lines += [f"## Sources that failed ({len(failed)})", "", "| source | url | error |", "|---|---|---|"]
        lines += [f"| {_cell(f['source'])} | {_cell(f['url'])} | {_cell(f['error'])} |" for f in failed]
        lines.append("")
    if parse_failures:
        lines += [f"## Bodies that could not be read ({len(parse_failures)})", "", "| snapshot | error |", "|---|---|"]
        lines += [f"| {_cell(s[:12])} | {_cell(e)} |" for s, e in sorted(parse_failures.items())]
        lines.append("")
    return "\n".join(lines)


def _text(value: Decimal | None) -> str:
    return "" if value is None else format(value, "f")


def _cell(value: object) -> str:
    # A pipe or a line break inside a cell would break the table; a provider's error text may hold both.
    return " ".join(str(value).split()).replace("|", "\\|")[:300]
