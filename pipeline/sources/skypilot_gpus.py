"""What GPU a row of a SkyPilot catalog prices (pipeline.sources.skypilot): its AcceleratorName, AcceleratorCount,
GpuInfo, InstanceType and UpstreamCloudId, resolved by the catalog of GPU aliases, or the row's refusal.

Both paths of the parser ask here: the readable one row by row, the columnar one (skypilot_columns) once per distinct
set of cells. How GpuInfo is read and why its memory is only a hint: see the docstring of pipeline.sources.skypilot.
"""
from __future__ import annotations

import ast
import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from itertools import repeat
from typing import NamedTuple

from pipeline.catalog import Catalog, Resolution, gpu_name_key
from pipeline.records import MAX_MAGNITUDE, read_decimal

# The longest GpuInfo cell read (real ones are under 300 characters) and the deepest nesting of its brackets (real
# ones: 4); a longer or deeper one is a hostile cell, refused before json or ast reads it.
MAX_GPU_INFO_CHARS = 4096
MAX_GPU_INFO_DEPTH = 16

# Accelerators that are not GPUs (Google TPUs, AWS Inferentia/Trainium, Intel Gaudi): a clearer reason than
# `unknown_instrument`, since no alias will ever map them to a GPU index.
NOT_A_GPU = re.compile(r"^(tpu[-_]|inferentia|trainium|gaudi|qualcomm)", re.I)

# A GPU's memory written in the SizeInMiB field but below 1 GiB can only be in GiB (RunPod's v8 catalog writes
# `'SizeInMiB': 80` for an 80 GB card); no GPU in any catalog has less than 1 GiB.
_SMALLEST_PLAUSIBLE_MIB = 1024
# How far a stated memory may be from a round number of GiB and still count as that size (nvidia-smi reports
# 81559 MiB for an 80 GB card, 40536 for a 40 GB one, 16160 for a 16 GB one).
_SNAP_TOLERANCE = Decimal("0.03")
# How far a stated memory may be from the canonical GPU's nominal size and still be kept as an attribute.
_CONSISTENT_TOLERANCE = Decimal("0.25")
# Two memories this close are "the same" when comparing a multi-GPU row with its single-GPU sibling.
_SAME_TOLERANCE = Decimal("0.02")

_SIZE_IN_MIB = re.compile(r"""["']?sizeinmib["']?\s*:\s*(\d{1,9})(?!\d)""", re.I)
_GPU_NAME = re.compile(r"""["']?name["']?\s*:\s*["']([^"']+)["']""", re.I)


class Refusal(NamedTuple):
    reason: str
    detail: str


def instance_label(instance_type: str, accelerator: str, count_text: str) -> str:
    # GCP lists GPUs that attach to any VM with an empty InstanceType; the GPU and its count then name the row.
    return instance_type or f"[{accelerator} x{count_text}]"


def identity(instance_type: str, accelerator: str, count_text: str, gpu_info: str, upstream: str, provider: str,
             catalog: Catalog, memory_reference: dict[str, int]) -> tuple[str, int | None, Decimal] | Refusal:
    """What GPU a row prices, from the cells that say it: (canonical GPU, memory worth keeping, GPU count), or
    the row's refusal. The same cells give the same answer, so the columnar path asks once per distinct set."""
    label = instance_label(instance_type, accelerator, count_text)
    if not accelerator:
        # GCP's A2/A3/G2 machine rows carry only the host (vCPU and RAM) part of the price: their GPUs are priced on
        # their own accelerator rows, so the host row is no GPU observation either.
        return Refusal("no_accelerator",
                       f"{label!r} has no GPU on this row (a CPU-only instance or a host-only price)")
    count = parse_count(count_text)
    if count is None:
        return Refusal("bad_gpu_count", f"AcceleratorCount {count_text!r} is not a positive number")
    if NOT_A_GPU.match(accelerator):
        return Refusal("not_a_gpu",
                       f"accelerator {accelerator!r} is not a GPU (TPU, Inferentia, Trainium, Gaudi or Qualcomm AI)")
    try:
        info_name, stated_mib = _gpu_info(gpu_info)
    except _HostileCell as exc:
        return Refusal("malformed_row", f"GpuInfo {exc}")
    # Aggregators (Prime Intellect) name the offer their way and keep the upstream cloud's own instance name beside
    # it; alias patterns are searched in both, since the upstream name is often the one that states the form factor.
    described_as = f"{instance_type} {upstream}".strip() if upstream and upstream != instance_type else instance_type
    canonical, memory_mib, detail = _resolve(
        catalog, accelerator, info_name, provider, described_as, count, stated_mib, memory_reference
    )
    if canonical is None:
        return Refusal("unknown_instrument", detail)
    return canonical, memory_mib, count


def parse_count(text: str) -> Decimal | None:
    value = read_decimal(text)
    if value is None or value <= 0:
        return None
    # `8.0` and `8` are the same count; a fraction of a GPU (0.5) stays a fraction.
    return Decimal(int(value)) if value == value.to_integral_value() else value


def _gpu_info(text: str) -> tuple[str | None, int | None]:
    """(GPU name, per-GPU memory in MiB as stated) from a GpuInfo cell, each None when absent.

    The cell is a Python-repr dict, the same with lowercase keys (DigitalOcean), real JSON (Verda), a bare name
    (RunPod v5, Paperspace) or empty. Hyperstack's dict mixes Python quotes with JSON's `null`, which neither
    ast.literal_eval nor json.loads accepts, so a regular expression is the last resort. Never eval().
    """
    text = text.strip()
    if not text:
        return None, None
    if len(text) > MAX_GPU_INFO_CHARS:
        raise _HostileCell(f"is {len(text)} characters long (at most {MAX_GPU_INFO_CHARS} are read)")
    if not text.startswith("{"):
        return text, None  # a bare name, e.g. RTX_A6000
    return _gpu_info_dict(text)


# A catalog repeats its GpuInfo cells region after region, and ast.literal_eval takes some 50 us a cell: each cell
# (at most MAX_GPU_INFO_CHARS long, so the cache stays small) is read once. A hostile cell raises, and is not kept.
@lru_cache(maxsize=1024)
def _gpu_info_dict(text: str) -> tuple[str | None, int | None]:
    """_gpu_info of a cell that opens with `{`."""
    depth = _nesting_depth(text)
    if depth > MAX_GPU_INFO_DEPTH:
        raise _HostileCell(f"is nested {depth} deep (at most {MAX_GPU_INFO_DEPTH} levels are read)")
    data = None
    try:
        data = json.loads(text)
    except RecursionError:
        raise _HostileCell("is nested too deep to read") from None
    except ValueError:
        try:
            data = ast.literal_eval(text)
        except (MemoryError, RecursionError):
            raise _HostileCell("is nested too deep to read") from None
        except (ValueError, SyntaxError, TypeError, OverflowError):
            data = None
    if isinstance(data, dict):
        gpus = _get_ci(data, "gpus")
        first = gpus[0] if isinstance(gpus, list) and gpus and isinstance(gpus[0], dict) else {}
        name = _get_ci(first, "name")
        memory = _get_ci(_get_ci(first, "memoryinfo") or {}, "sizeinmib")
        name = name if isinstance(name, str) and name.strip() else None
        return name, _memory_number(memory)
    size, name = _SIZE_IN_MIB.search(text), _GPU_NAME.search(text)
    return (name.group(1) if name else None), (int(size.group(1)) if size and int(size.group(1)) > 0 else None)


def _nesting_depth(text: str) -> int:
    """The deepest nesting of brackets in the text (quotes ignored: an upper bound is all that is needed)."""
    depth = deepest = 0
    for char in text:
        if char in "{[(":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "}])":
            depth = max(0, depth - 1)
    return deepest


class _HostileCell(Exception):
    """A GpuInfo cell this parser will not read (too long, nested too deep): the row is refused."""


def _memory_number(value: object) -> int | None:
    """A stated memory in whole MiB, or None: a positive int or finite float within 1e9 (json gives `81920.0`)."""
    if isinstance(value, float):
        if not math.isfinite(value) or not 0 < value <= float(MAX_MAGNITUDE):
            return None
        return int(value)
    number = read_decimal(value)
    return int(number) if number is not None and number > 0 else None


def _get_ci(mapping: object, key: str):
    """dict lookup ignoring key case: DigitalOcean writes 'gpus'/'sizeinmib' where others write 'Gpus'/'SizeInMiB'."""
    if not isinstance(mapping, dict):
        return None
    for k, v in mapping.items():
        if isinstance(k, str) and k.lower() == key:
            return v
    return None


def _as_mib(stated: int | None) -> int | None:
    if stated is None:
        return None
    return stated * 1024 if stated < _SMALLEST_PLAUSIBLE_MIB else stated


def reference_memories(accelerators: Iterable[str], count_texts: Iterable[str], gpu_infos: Iterable[str],
                       weights: Iterable[int] | None = None) -> dict[str, int]:
    """Per GPU name (gpu_name_key), the memory most often stated on the single-GPU rows, from the cells of each row
    in body order; or, with `weights`, from each distinct (AcceleratorName, AcceleratorCount, GpuInfo) in the order
    it first appears, weighted by its number of rows: the same counts, and the same first-seen order that breaks a
    tie between two memories stated equally often."""
    count_of, info_of = once_per_value(parse_count), once_per_value(_stated_memory)
    seen: dict[str, Counter] = {}
    for accelerator, count_text, info, weight in zip(accelerators, count_texts, gpu_infos,
                                                     repeat(1) if weights is None else weights):
        if not accelerator or count_of(count_text) != 1:
            continue
        memory = info_of(info)
        if memory is not None:
            seen.setdefault(gpu_name_key(accelerator), Counter())[memory] += weight
    return {name: counter.most_common(1)[0][0] for name, counter in seen.items()}


def _stated_memory(gpu_info: str) -> int | None:
    try:
        return _as_mib(_gpu_info(gpu_info)[1])
    except _HostileCell:
        return None  # refused as malformed_row when the row itself is read


def once_per_value(function):
    """function(value), computed once per distinct value (a catalog repeats its cells region after region)."""
    seen: dict = {}

    def once(*key):
        try:
            return seen[key]
        except KeyError:
            seen[key] = result = function(*key)
            return result

    return once


def _close(a: Decimal | int, b: Decimal | int, tolerance: Decimal) -> bool:
    a, b = Decimal(a), Decimal(b)
    return b != 0 and abs(a - b) <= tolerance * abs(b)


def _snap(mib: int) -> int:
    """Round to a whole number of GiB when the stated value is within 3% of one (81559 -> 81920)."""
    gib = (Decimal(mib) / 1024).to_integral_value()
    return int(gib) * 1024 if gib > 0 and _close(mib, gib * 1024, _SNAP_TOLERANCE) else mib


def _memory_candidates(
    accelerator: str, count: Decimal, stated: int | None, memory_reference: dict[str, int]
) -> list[int | None]:
    """Per-GPU memories to try, most likely first (see skypilot._single_gpu_memories)."""
    stated = _as_mib(stated)
    if stated is None:
        return [None]
    if count == 1:
        return [stated]
    divided = Decimal(stated) / count
    per_gpu_if_total = int(divided) if divided == divided.to_integral_value() else None
    reference = memory_reference.get(gpu_name_key(accelerator))
    if reference is not None:
        if _close(stated, reference, _SAME_TOLERANCE):
            return [stated]  # this file states memory per GPU
        if _close(stated, reference * count, _SAME_TOLERANCE):
            return [per_gpu_if_total or reference]  # this file states the instance total
    # No sibling to compare with: the stated value first, the total reading only if the first maps to nothing.
    return [stated] + ([per_gpu_if_total] if per_gpu_if_total else [])


def _resolve(
    catalog: Catalog,
    accelerator: str,
    info_name: str | None,
    provider: str,
    instance_type: str,
    count: Decimal,
    stated_mib: int | None,
    memory_reference: dict[str, int],
) -> tuple[str | None, int | None, str]:
    """(canonical GPU, per-GPU memory worth keeping, failure detail).

    The AcceleratorName is tried first; GpuInfo's own name (e.g. RunPod's 'A100 PCIe', Hyperstack's
    'H100-80G-PCIe') only when the AcceleratorName maps to nothing, since it is the same cloud describing the
    same GPU. Memory candidates are tried in order; the first that resolves wins.
    """
    names = [accelerator]
    if info_name and gpu_name_key(info_name) != gpu_name_key(accelerator):
        names.append(info_name)
    first_failure: Resolution | None = None
    for memory in _memory_candidates(accelerator, count, stated_mib, memory_reference):
        for name in names:
            resolution = catalog.resolve_gpu(
                name,
                provider=provider,
                instance_type=instance_type,
                gpu_memory_mib=_snap(memory) if memory is not None else None,
            )
            if resolution.canonical is not None:
                return resolution.canonical, _consistent_memory(catalog, resolution.canonical, memory, count), ""
            first_failure = first_failure or resolution
    assert first_failure is not None
    return None, None, first_failure.detail


def _consistent_memory(catalog: Catalog, canonical: str, memory: int | None, count: Decimal) -> int | None:
    """The stated per-GPU memory if it agrees with the GPU's nominal size, else None (it is only a hint: Nebius
    states host RAM there, Verda's older file and Vast the instance total)."""
    if memory is None:
        return None
    nominal_gb = (catalog.gpus.get(canonical) or {}).get("memory_gb", "")
    try:
        nominal_mib = Decimal(nominal_gb) * 1024
    except InvalidOperation:
        return memory  # nothing to compare with: keep what the source says
    for candidate in (memory, Decimal(memory) / count if count > 1 else None):
        if candidate is not None and _close(candidate, nominal_mib, _CONSISTENT_TOLERANCE):
            return int(candidate)
    return None
