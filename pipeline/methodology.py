"""An index definition in words (`tsi methodology [INDEX]`, and each index page of the site).

The text is generated from the definition object alone, so it cannot drift from what the engine does with
it: every step of README "Methodology" that a parameter governs is written out with that parameter's value
and name, and the parameter table after it lists every field of the dataclass, whatever fields it gains.
tests/test_methodology_doc.py changes each field in turn and checks that the words change with it: a new
parameter nobody wrote a sentence for fails there.

The definition described is either the file's (pipeline/indices.toml, `tsi methodology`) or the one stored
in the warehouse under a fixing's methodology version (the site): the same function describes both.
"""
from __future__ import annotations

import dataclasses
import difflib
import textwrap
from decimal import Decimal

from pipeline.definitions import (
    BLENDED,
    UNIT_LABEL,
    BasketDefinition,
    Definition,
    IndexDefinition,
    load_definitions,
)

QUANTILE_WORDS = {
    "hyndman_fan_7": "Hyndman-Fan type 7, linear: h = 1 + (n - 1) p (numpy's default, Excel PERCENTILE.INC, "
                     "DuckDB quantile_cont)",
    "hyndman_fan_6": "Hyndman-Fan type 6: h = (n + 1) p held inside [1, n] (Excel PERCENTILE.EXC, Python "
                     "statistics.quantiles)",
    "hyndman_fan_1": "Hyndman-Fan type 1: h = ceil(n p), always an observed value",
}
PROVIDER_VALUE_WORDS = {
    "median_of_rows": "the median of all its rows (regions, instance sizes, endpoints)",
    "median_of_region_medians": "the median within each region (rows without a region form one), then the "
                                "median of those region medians",
}
MARKETPLACE_WORDS = {
    "gpu_weighted_median": "the lower GPU-weighted median of its offers (each offer weighs its GPU count, 1 if "
                           "none: the lowest price at or below which the offers hold at least half of the GPUs)",
    "as_other_providers": "the same rule as any other provider",
}
KIND_WORDS = {"gpu": "GPU rental", "token": "LLM token"}


# The values validate_index gives a parameter that only applies with a given choice when the entry leaves it
# out (pipeline/definitions.py): the dataclass default of these is None, the methodology's is not.
CONDITIONAL_DEFAULTS = {
    "blend_input": Decimal("0.75"), "blend_output": Decimal("0.25"),
    "trim_fraction": Decimal("0.1"), "weight_cap": Decimal("0.25"),
}
NOT_SET = {"sources": "(any source)", "segments": "(any segment)"}
WIDTH = 110  # the terminal text is wrapped here; the site lays the same paragraphs out itself


def describe(definition: Definition) -> str:
    """The definition in words: what it prices, each step of the fixing with its parameters, then every
    field of the definition with its value (marked when it is the methodology's default)."""
    d = definition
    lines = [f"{d.id}: {d.name}", f"Methodology version {d.methodology_version} (definition sha256 {d.sha256})", ""]
    for title, paragraphs in sections(d):
        lines.append(title)
        for paragraph in paragraphs:
            # a continuation ("   A marketplace ...") keeps its indent under the step it belongs to
            indent = "  " + " " * (len(paragraph) - len(paragraph.lstrip(" ")))
            hang = indent + ("   " if paragraph[:1].isdigit() else "")
            lines.extend(textwrap.wrap(paragraph.strip(), WIDTH, initial_indent=indent, subsequent_indent=hang,
                                       break_on_hyphens=False))
        lines.append("")
    lines.append(PARAMETERS_TITLE)
    rows = parameters(d)
    width = max(len(name) for name, _, _ in rows)
    lines.extend(f"  {name.ljust(width)}  {value}{'  *' if default else ''}" for name, value, default in rows)
    return "\n".join(lines) + "\n"


PARAMETERS_TITLE = "Parameters (every field of the definition; * = the methodology's default)"


def sections(d: Definition) -> list[tuple[str, list[str]]]:
    """(title, paragraphs) of the text in words; a paragraph starting with spaces continues the step above."""
    return _basket_sections(d) if d.is_basket else _index_sections(d)


def parameters(d: Definition) -> list[tuple[str, str, bool]]:
    """(field, value as text, is the default) for every dataclass field, in declaration order: nothing of the
    definition is left out, whatever fields it gains."""
    rows = []
    for f in dataclasses.fields(d):
        value = getattr(d, f.name)
        if value is not None and f.name in CONDITIONAL_DEFAULTS:
            default = CONDITIONAL_DEFAULTS[f.name]
        else:
            default = f.default  # dataclasses.MISSING for a required field: never equal to a value
        text = NOT_SET.get(f.name, "(not set)") if value is None else value_text(value)
        rows.append((f.name, text, value == default))
    return rows


def value_text(value: object) -> str:
    """A parameter as a person reads it: decimals as written (3.5, 0.001), lists comma-separated."""
    if value is None:
        return "(not set)"
    if isinstance(value, Decimal):
        return _number(value)
    if isinstance(value, tuple):
        return ", ".join(value_text(v) for v in value) if value else "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _number(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _unit(d: Definition) -> str:
    return UNIT_LABEL.get(d.instrument_kind, f"the unit of {d.instrument_kind} prices")


def _index_sections(d: IndexDefinition) -> list[tuple[str, list[str]]]:
    unit = _unit(d)
    instruments = ", ".join(d.instruments)
    pooled = " (their observations pooled)" if len(d.instruments) > 1 else ""
    if d.segments is None:
        segments = "providers of any segment (segments not set: a provider without a segment is included too)"
    else:
        segments = (f"providers of the segment(s) {', '.join(d.segments)} only (segments; a provider without a "
                    "segment never passes, and segments not listed are never blended in)")
    sources = "any source (sources not set)" if d.sources is None else f"the source(s) {', '.join(d.sources)} (sources)"
    what = [
        f"The {d.price_type} price (price_type) of {instruments}{pooled} (instruments), a {d.instrument_kind} "
        f"instrument (instrument_kind: {KIND_WORDS.get(d.instrument_kind, d.instrument_kind)}), in {unit}.",
        f"Observations come from {segments}, as collected by {sources}.",
    ]

    eligible = [
        f"1. Eligible observations: those observed in the window (T - {d.window_hours} h, T] (window_hours; start "
        "excluded, end included) that passed the shared checks (positive, inside the instrument's sanity band, "
        "unit known); a price history dated by its source counts only on the dates it is valid.",
    ]
    vote = [
        f"2. One provider, one vote: each provider's latest collection in the window from each source gives one "
        f"provider value, {PROVIDER_VALUE_WORDS.get(d.provider_value, d.provider_value)} (provider_value "
        f"{d.provider_value}).",
        f"   A marketplace provider (many hosts' offers under one name) is valued by "
        f"{MARKETPLACE_WORDS.get(d.marketplace_value, d.marketplace_value)} (marketplace_value "
        f"{d.marketplace_value}).",
    ]
    if d.price_type == BLENDED or d.blend_input is not None or d.blend_output is not None:
        vote.append(
            f"   Blended price: per provider, input value x {value_text(d.blend_input)} (blend_input) + output value "
            f"x {value_text(d.blend_output)} (blend_output), both legs from the same collection; a provider "
            "missing a leg is excluded (incomplete_blend)."
        )
    else:
        vote.append("   Not a blended price: blend_input and blend_output are not set.")
    vote.append(
        f"   Vote floor: a provider whose rows hold fewer than {d.min_distinct_prices} distinct price(s) (per leg) "
        "has no vote (min_distinct_prices; insufficient_distinct_prices)."
    )

    if d.outlier_screen == "none":
        screen = [
            f"3. Outlier screen: none (outlier_screen none): no provider is dropped as an outlier "
            f"(outlier_threshold {_number(d.outlier_threshold)} and outlier_min_providers "
            f"{d.outlier_min_providers} are not used)."
        ]
    else:
        screen = [
            f"3. Outlier screen ({d.outlier_screen}, outlier_screen): with m the median of the voting providers' "
            f"values and MAD the median of |p - m|, a provider is dropped (outlier_mad) when its modified z-score "
            f"|0.6745 (p - m) / MAD| exceeds {_number(d.outlier_threshold)} (outlier_threshold). The screen is "
            f"skipped when MAD is 0 or fewer than {d.outlier_min_providers} providers vote (outlier_min_providers)."
        ]

    estimator = [_estimator_words(d)]
    if d.estimator != "trimmed_mean":
        estimator.append(f"   trim_fraction {value_text(d.trim_fraction)}: applies to the trimmed_mean estimator only.")
    if d.estimator != "capped_weight_median":
        estimator.append(f"   weight_cap {value_text(d.weight_cap)}: applies to the capped_weight_median estimator "
                         "only.")
    if d.estimator != "median":
        estimator.append(f"   mean_from_providers {d.mean_from_providers}: applies to the median estimator only.")

    ladder = ", then ".join(f"{h} h" for h in d.fallback_window_hours)
    if ladder:
        widen = (f"Otherwise the wider windows of {ladder} ending at T are tried in turn (fallback_window_hours); the "
                 "first with enough providers gives the status widened.")
    else:
        widen = "No wider window is tried (fallback_window_hours empty)."
    if d.carry_days:
        carry = (f"Otherwise the last value fixed from observations (final or widened) within {d.carry_days} day(s) "
                 "before D is repeated with the status carried (carry_days; a carried value is never carried "
                 "further).")
    else:
        carry = "No value is ever carried (carry_days 0)."
    sufficiency = [
        f"5. Sufficiency: the fixing needs at least {d.min_providers} included provider(s) (min_providers). "
        f"{widen} {carry} Otherwise no number is published: the status is suppressed "
        "(insufficient_providers)."
    ]
    basis = ("the included provider values" if d.dispersion_basis == "provider_values"
             else "every observation of the included providers' collections")
    closing = [
        f"6. Precision: exact decimals throughout; the value is rounded half-even to {d.decimals} decimal places "
        "(decimals) at the very end.",
        f"7. Dispersion: p25, p75, min, max and mean of {basis} (dispersion_basis {d.dispersion_basis}), rounded "
        f"like the value; quartiles by {QUANTILE_WORDS.get(d.quantile_method, d.quantile_method)} "
        f"(quantile_method {d.quantile_method}).",
        _corrections_words(d, "8"),
        "9. Input hash: sha256 over the digests of every group of observations the fixing read, included or "
        "excluded (README Methodology, step 9): anyone holding the raw bodies can check it.",
    ]
    steps = eligible + vote + screen + estimator + sufficiency + closing
    return [("What it measures", what), (_fixing_title(d), steps)]


def _estimator_words(d: IndexDefinition) -> str:
    if d.estimator == "median":
        if d.mean_from_providers:
            switch = (f" From {d.mean_from_providers} included providers on, the arithmetic mean instead "
                      f"(mean_from_providers {d.mean_from_providers}).")
        else:
            switch = " Never the mean instead (mean_from_providers 0)."
        return ("4. Estimator (estimator median): the middle included provider value, or the mean of the two "
                f"middle values on an even count; each weighs 1/n.{switch}")
    if d.estimator == "mean":
        return "4. Estimator (estimator mean): the arithmetic mean of the included provider values; each weighs 1/n."
    if d.estimator == "trimmed_mean":
        return (f"4. Estimator (estimator trimmed_mean): the mean after cutting floor({value_text(d.trim_fraction)} "
                f"x n) values from each end (trim_fraction {value_text(d.trim_fraction)}); the values cut weigh 0.")
    if d.estimator == "capped_weight_median":
        return ("4. Estimator (estimator capped_weight_median): the lower weighted median of the included provider "
                "values, each provider weighing its listed GPUs (rows without a GPU count weigh 1), no provider "
                f"above {value_text(d.weight_cap)} of the total (weight_cap), the excess shared among the rest in "
                "proportion to their raw weights.")
    return f"4. Estimator (estimator {d.estimator})."


def _corrections_words(d: Definition, number: str) -> str:
    return (f"{number}. Corrections: until D + {d.cutoff_days} day(s) at {d.cutoff_time_utc} UTC (cutoff_days, "
            "cutoff_time_utc), a recomputation that changes the status or moves the value by more than "
            f"{_number(d.revision_threshold)} ({_number(d.revision_threshold * 100)}%) of the published value "
            "(revision_threshold) is published as the next revision; after the cutoff the fixing never changes. "
            "A published fixing is never edited: a correction is a new revision.")


def _fixing_title(d: Definition) -> str:
    return f"The fixing of date D (UTC), at T = D {d.fixing_time_utc} UTC (fixing_time_utc)"


def _basket_sections(d: BasketDefinition) -> list[tuple[str, list[str]]]:
    members = ", ".join(d.members)
    need = (f"every one of its {len(d.members)} members" if not d.min_members
            else f"at least {d.min_members} of its {len(d.members)} members")
    what = [
        f"A basket: the equal-weight mean of the member indices {members} (members), all of them "
        f"{d.instrument_kind} indices (instrument_kind: {KIND_WORDS.get(d.instrument_kind, d.instrument_kind)}) of "
        f"the price type {d.price_type} (price_type), in {_unit(d)}.",
    ]
    steps = [
        "1. Members' values: each member index's published (rounded) value of D; the basket reads its members' "
        "fixings, never observations.",
        f"2. Sufficiency: a value needs {need} with a value (min_members {d.min_members}"
        f"{', which means all' if not d.min_members else ''}); otherwise the status is suppressed (member_suppressed, "
        "insufficient_members). The basket's status is its weakest member's (final < widened < carried).",
        f"3. Window: {d.window_hours} h (window_hours), for the record only: the members' own windows apply.",
        f"4. Precision: the mean is rounded half-even to {d.decimals} decimal places (decimals).",
        f"5. Dispersion: p25, p75, min, max and mean of the member values, rounded like the value; quartiles by "
        f"{QUANTILE_WORDS.get(d.quantile_method, d.quantile_method)} (quantile_method {d.quantile_method}).",
        _corrections_words(d, "6"),
        "7. Input hash: sha256 over the lines member_id|value|member_input_hash in byte order.",
    ]
    return [("What it measures", what), (_fixing_title(d), steps)]


def find(definitions: list[Definition], index_id: str) -> Definition:
    """The definition of one id, or a one-line error naming the closest ids."""
    by_id = {d.id: d for d in definitions}
    if index_id in by_id:
        return by_id[index_id]
    close = difflib.get_close_matches(index_id.upper(), list(by_id), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else "; `tsi methodology` lists every index"
    raise ValueError(f"unknown index {index_id!r}: not defined in pipeline/indices.toml{hint}")


def cmd_methodology(args) -> int:
    """`tsi methodology [INDEX]`: the definitions of pipeline/indices.toml in words (the warehouse is not
    read: the file is the methodology in force; the site describes each fixing's stored version)."""
    definitions = load_definitions()
    chosen = [find(definitions, args.index)] if getattr(args, "index", None) else definitions
    print("\n".join(describe(d) for d in chosen), end="")
    return 0
