"""The SkyPilot catalog source: parsing, GPU identity, the real samples in ../shared, and the demo recordings.

Every expected price here was worked out by hand from the CSV text (instance price / GPU count), not copied from
the parser's output.
"""
from __future__ import annotations

import csv
import shutil
import tomllib
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from pipeline.catalog import Catalog
from pipeline.columnar import frame_from_observations
from pipeline.normalise import parse_body
from pipeline.paths import CATALOG_DIR
from pipeline.records import ON_DEMAND, SPOT, ParseContext, ParseError
from pipeline.sources import skypilot, skypilot_cells

TESTS = Path(__file__).resolve().parent
FIXTURES = TESTS / "fixtures" / "skypilot"
DEMO = TESTS / "fixtures" / "demo"
REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
REAL_SKYPILOT = REAL / "skypilot_catalog"
WHEN = datetime(2026, 11, 18, 16, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Catalog:
    """The shipped GPU catalog, with empty model files: the model catalog belongs to another source."""
    folder = tmp_path_factory.mktemp("catalog")
    for name in ("gpus.csv", "gpu_aliases.csv"):
        shutil.copy(CATALOG_DIR / name, folder / name)
    (folder / "models.csv").write_text("canonical_model,min_usd_per_mtok,max_usd_per_mtok\n")
    (folder / "model_aliases.csv").write_text("alias,canonical_model\n")
    return Catalog(folder)


def ctx(provider: str | None) -> ParseContext:
    return ParseContext(source="skypilot", observed_at=WHEN, url="https://example.test/vms.csv", provider=provider)


def parse_text(text: str, provider: str, catalog: Catalog):
    return skypilot.parse(text.encode("utf-8"), ctx(provider), catalog=catalog)


def one(observations, instance_type: str, price_type: str, region: str | None = None):
    found = [
        o
        for o in observations
        if o.attributes["instance_type"] == instance_type
        and o.price_type == price_type
        and (region is None or o.region == region)
    ]
    assert len(found) == 1, f"expected one {instance_type} {price_type} {region}, got {found}"
    return found[0]


def reasons(result) -> dict[str, int]:
    counts: dict[str, int] = {}
    for rejection in result.rejections:
        counts[rejection.reason] = counts.get(rejection.reason, 0) + 1
    return counts


# ----------------------------------------------------------------------------------------- hand-written fixtures


def test_lambda_fixture_per_gpu_prices_and_identity(catalog):
    result = skypilot.parse((FIXTURES / "lambda_vms.csv").read_bytes(), ctx("lambda"), catalog=catalog)
    obs = result.observations
    assert len(obs) == 8  # 8 GPU rows, Lambda has no spot prices
    assert reasons(result) == {"no_accelerator": 1}

    sxm = one(obs, "gpu_8x_h100_sxm5", ON_DEMAND, "us-east-1")
    assert sxm.instrument == "H100-SXM"
    assert sxm.usd_price == Decimal("2.99")  # 23.92 / 8
    assert sxm.original_price == Decimal("23.92")
    assert sxm.original_currency == "USD" and sxm.original_unit == "instance_hour"
    assert sxm.gpu_count == Decimal(8)
    assert sxm.source_instrument == "H100"
    assert sxm.provider == "lambda"
    assert sxm.row_key == "gpu_8x_h100_sxm5|us-east-1||on_demand"
    assert sxm.attributes == {"instance_type": "gpu_8x_h100_sxm5", "gpu_memory_mib": 81920}

    pcie = one(obs, "gpu_1x_h100_pcie", ON_DEMAND)
    assert (pcie.instrument, pcie.usd_price) == ("H100-PCIE", Decimal("2.49"))
    # A bare A100 with 40960 MiB per GPU is the 40 GB card: 10.32 / 8 = 1.29.
    a100 = one(obs, "gpu_8x_a100", ON_DEMAND)
    assert (a100.instrument, a100.usd_price) == ("A100-40GB", Decimal("1.29"))
    a100_80 = one(obs, "gpu_8x_a100_80gb_sxm4", ON_DEMAND)
    assert (a100_80.instrument, a100_80.usd_price) == ("A100-80GB", Decimal("1.79"))  # 14.32 / 8
    v100 = one(obs, "gpu_8x_v100", ON_DEMAND)
    assert (v100.instrument, v100.usd_price) == ("V100-16GB", Decimal("0.55"))  # 4.4 / 8
    assert one(obs, "gpu_1x_rtx6000", ON_DEMAND).instrument == "QUADRO-RTX6000"
    assert one(obs, "gpu_1x_gh200", ON_DEMAND).instrument == "GH200"


def test_cpu_row_is_rejected_with_its_line_as_excerpt(catalog):
    result = skypilot.parse((FIXTURES / "lambda_vms.csv").read_bytes(), ctx("lambda"), catalog=catalog)
    [cpu] = result.rejections
    assert cpu.reason == "no_accelerator"
    assert cpu.raw_excerpt == "cpu_4x_general,,,4.0,16.0,0.2,us-east-1,,"  # the CSV line, without its CRLF
    assert cpu.row_key.startswith("cpu_4x_general|us-east-1|")


def test_runpod_fixture_spot_and_on_demand(catalog):
    result = skypilot.parse((FIXTURES / "runpod_vms.csv").read_bytes(), ctx("runpod"), catalog=catalog)
    obs = result.observations
    assert result.rejections == []
    assert len(obs) == 11  # 6 rows x 2 prices, minus one empty SpotPrice

    a6000_spot = one(obs, "2x_RTXA6000_COMMUNITY", SPOT)
    assert (a6000_spot.instrument, a6000_spot.usd_price) == ("RTXA6000", Decimal("0.34"))  # 0.68 / 2
    assert a6000_spot.original_price == Decimal("0.68")
    assert one(obs, "2x_RTXA6000_COMMUNITY", ON_DEMAND).usd_price == Decimal("0.69")  # 1.38 / 2

    h100_spot = one(obs, "8x_H100-80GB-HBM3_COMMUNITY", SPOT)
    assert (h100_spot.instrument, h100_spot.usd_price) == ("H100-SXM", Decimal("2.49"))  # 19.92 / 8
    assert one(obs, "8x_H100-80GB-HBM3_COMMUNITY", ON_DEMAND).usd_price == Decimal("4.49")  # 35.92 / 8

    # RunPod's bare "H100" is its "NVIDIA H100 PCIe"; the empty SpotPrice gives no spot observation.
    pcie = [o for o in obs if o.attributes["instance_type"] == "1x_H100_SECURE"]
    assert [(o.instrument, o.price_type, o.usd_price) for o in pcie] == [("H100-PCIE", ON_DEMAND, Decimal("2.39"))]

    # 1.00 / 3 and 0.50 / 3 do not terminate: 10 decimal places, half-even.
    assert one(obs, "3x_RTX4090_COMMUNITY", ON_DEMAND).usd_price == Decimal("0.3333333333")
    assert one(obs, "3x_RTX4090_COMMUNITY", SPOT).usd_price == Decimal("0.1666666667")


def test_verda_fixture_empty_price_memory_bug_and_cpu(catalog):
    result = skypilot.parse((FIXTURES / "verda_vms.csv").read_bytes(), ctx("verda"), catalog=catalog)
    obs = result.observations
    assert len(obs) == 12
    assert reasons(result) == {"no_accelerator": 1}

    # Empty Price, SpotPrice 4.893 for 2 GPUs: only a spot observation, 2.4465 per GPU-hour.
    b300 = [o for o in obs if o.attributes["instance_type"] == "2B300.60V"]
    assert [(o.instrument, o.price_type, o.usd_price) for o in b300] == [("B300", SPOT, Decimal("2.4465"))]

    h100 = one(obs, "1H100.80S.30V", ON_DEMAND)  # 80S = 80 GB SXM
    assert (h100.instrument, h100.usd_price) == ("H100-SXM", Decimal("1.99"))
    assert h100.attributes["upstream_cloud_id"] == "1H100.80S.30V"

    # The older file states the instance total (32768) as the per-GPU memory of 2x Tesla-V100: it is 16 GB each.
    v100 = one(obs, "2V100.10V", ON_DEMAND)
    assert (v100.instrument, v100.usd_price) == ("V100-16GB", Decimal("0.14"))  # 0.28 / 2
    assert v100.attributes["gpu_memory_mib"] == 16384
    assert one(obs, "2V100.10V", SPOT).usd_price == Decimal("0.07")  # 0.14 / 2

    a100 = one(obs, "2A100.44V", SPOT)
    assert (a100.instrument, a100.usd_price) == ("A100-80GB", Decimal("0.58"))  # 1.16 / 2
    assert a100.attributes["gpu_memory_mib"] == 81920  # 163840 stated, the total of two

    l40s = [o for o in obs if o.attributes["instance_type"] == "1L40S.20V"]
    assert [(o.price_type, o.usd_price) for o in l40s] == [(ON_DEMAND, Decimal("0.91"))]
    assert one(obs, "1B300.30V", SPOT).usd_price == Decimal("2.447")


# ----------------------------------------------------------------------------------------- quirks, inline


LAMBDA_HEADER = "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,Region,GpuInfo,SpotPrice\n"


def test_fractional_gpu_counts(catalog):
    text = (
        "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,Region\n"
        "Standard_NV18ads_A10_v5,A10,0.5,18,220.0,,0.908,0.1816,eastus\n"
        "Standard_NV12ads_A10_v5,A10,0.25,12,110.0,,0.454,,eastus\n"
    )
    result = parse_text(text, "azure", catalog)
    half = one(result.observations, "Standard_NV18ads_A10_v5", ON_DEMAND)
    assert half.gpu_count == Decimal("0.5")
    assert half.usd_price == Decimal("1.816")  # 0.908 / 0.5
    assert one(result.observations, "Standard_NV18ads_A10_v5", SPOT).usd_price == Decimal("0.3632")  # 0.1816 / 0.5
    quarter = one(result.observations, "Standard_NV12ads_A10_v5", ON_DEMAND)
    assert quarter.usd_price == Decimal("1.816")  # 0.454 / 0.25


@pytest.mark.parametrize("count", ["0", "-1", "abc", "0.0", "nan"])
def test_bad_gpu_count(catalog, count):
    result = parse_text(LAMBDA_HEADER + f"gpu_1x_a10,A10,{count},30.0,200.0,0.75,us-east-1,,\n", "lambda", catalog)
    assert result.observations == []
    assert [r.reason for r in result.rejections] == ["bad_gpu_count"]


@pytest.mark.parametrize("price", ["n/a", "-0.75", "Infinity", "0.75.1"])
def test_bad_price(catalog, price):
    result = parse_text(LAMBDA_HEADER + f"gpu_1x_a10,A10,1.0,30.0,200.0,{price},us-east-1,,0.30\n", "lambda", catalog)
    assert [r.reason for r in result.rejections] == ["bad_price"]
    assert result.rejections[0].row_key == "gpu_1x_a10|us-east-1||on_demand"
    # The spot price of the same row is still good.
    assert [(o.price_type, o.usd_price) for o in result.observations] == [(SPOT, Decimal("0.30"))]


def test_zero_and_empty_prices(catalog):
    text = (
        "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,Region\n"
        "1x-RTX_4090-32-65536,RTX4090,1,32,64.0,,0.40,0.00,\"Texas, US, NA\"\n"  # Vast: 0.00 spot = no spot offer
        "1x-RTX_3090-32-65536,RTX3090,1,32,64.0,,,0.20,\"Quebec, CA, NA\"\n"  # no on-demand offer
        "1x-L40S-32-65536,L40S,1,32,64.0,,0.0,,\"Oregon, US, NA\"\n"  # on-demand 0: left to the shared check
    )
    result = parse_body(skypilot, text.encode(), ctx("vast"), catalog=catalog)
    got = sorted((o.instrument, o.price_type, o.usd_price, o.region) for o in result.observations)
    assert got == [
        ("RTX3090", SPOT, Decimal("0.2"), "Quebec, CA, NA"),
        ("RTX4090", ON_DEMAND, Decimal("0.4"), "Texas, US, NA"),
    ]
    assert [(r.reason, r.row_key) for r in result.rejections] == [
        ("not_positive", "1x-L40S-32-65536|Oregon, US, NA||on_demand")
    ]


def test_hostile_accelerator_name_is_rejected_not_observed(catalog):
    line = "gpu_1x_evil,=cmd|' /C calc'!A0,1.0,30.0,200.0,0.75,us-east-1,,"
    result = parse_text(LAMBDA_HEADER + line + "\n", "lambda", catalog)
    assert result.observations == []
    [rejection] = result.rejections
    assert rejection.reason == "unknown_instrument"
    assert "=cmd|' /C calc'!A0" in rejection.detail
    assert rejection.raw_excerpt == line


def test_bare_h100_without_form_factor_is_not_guessed(catalog):
    # An H100 at a cloud with no provider rule and nothing in the instance type: SXM, PCIe or NVL? Unknown.
    text = LAMBDA_HEADER + "ECS4GPUH100,H100,4,64,512.0,9.96,it-fr2,,\n"
    result = parse_text(text, "seeweb", catalog)
    assert result.observations == []
    assert [r.reason for r in result.rejections] == ["unknown_instrument"]


def test_non_gpu_accelerators_are_not_a_gpu(catalog):
    text = (
        "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,Region,AvailabilityZone\n"
        "inf2.xlarge,Inferentia2,1,4,16.0,,0.7582,0.2231,us-east-1,us-east-1a\n"
        "trn1.2xlarge,Trainium,1,8,32.0,,1.34375,0.4032,us-east-1,us-east-1a\n"
        ",tpu-v4-8,1,,,,12.88,3.864,us-central2,us-central2-b\n"
        "dl1.24xlarge,Gaudi HL-205,8,96,768.0,,13.10904,3.9327,us-east-1,us-east-1a\n"
        "dl2q.24xlarge,Qualcomm AI100,8,96,768.0,,8.919,,us-west-2,usw2-az2\n"
    )
    result = parse_text(text, "aws", catalog)
    assert result.observations == []
    assert [r.reason for r in result.rejections] == ["not_a_gpu"] * 5


# Quirks of the catalogs of other clouds, on small fixtures written in each cloud's real layout (checked against the
# skypilot-catalog repository's v7/v8 files of AWS, GCP, Prime Intellect and Shadeform).


def test_aws_v8_layout_arch_column_fractional_gpu_and_non_gpus(catalog):
    result = skypilot.parse((FIXTURES / "aws_vms.csv").read_bytes(), ctx("aws"), catalog=catalog)
    obs = result.observations
    assert len(obs) == 12  # 7 GPU rows x 2 prices, less 2 empty SpotPrice
    assert sorted(r.reason for r in result.rejections) == ["no_accelerator", "not_a_gpu", "not_a_gpu"]

    p5 = one(obs, "p5.48xlarge", ON_DEMAND, "us-east-1")
    assert (p5.instrument, p5.usd_price) == ("H100-SXM", Decimal("12.29"))  # 98.32 / 8
    assert p5.attributes["availability_zone"] == "use1-az2"
    assert one(obs, "p5.48xlarge", SPOT, "us-east-1").usd_price == Decimal("3.9328")  # 31.4624 / 8
    # Empty SpotPrice in ap-northeast-2: only the on-demand price, 110.1184 / 8 = 13.7648.
    seoul = [o for o in obs if o.region == "ap-northeast-2"]
    assert [(o.price_type, o.usd_price) for o in seoul] == [(ON_DEMAND, Decimal("13.7648"))]
    # p4d states 40960 MiB per GPU: the 40 GB card; 32.7726 / 8 = 4.096575.
    p4d = one(obs, "p4d.24xlarge", ON_DEMAND)
    assert (p4d.instrument, p4d.usd_price) == ("A100-40GB", Decimal("4.096575"))
    assert one(obs, "p4de.24xlarge", ON_DEMAND).instrument == "A100-80GB"
    # gr6f: half an L4 (AcceleratorCount 0.5, GpuInfo Count 0): 1.066 / 0.5 = 2.132 per whole GPU-hour.
    half = one(obs, "gr6f.4xlarge", ON_DEMAND)
    assert (half.instrument, half.gpu_count, half.usd_price) == ("L4", Decimal("0.5"), Decimal("2.132"))
    assert one(obs, "gr6f.4xlarge", SPOT).usd_price == Decimal("0.6112")  # 0.3056 / 0.5
    assert one(obs, "g4ad.xlarge", ON_DEMAND).instrument == "RADEON-PRO-V520"


def test_gcp_v8_host_rows_gpu_only_rows_and_tpu_placeholders(catalog):
    result = parse_body(skypilot, (FIXTURES / "gcp_vms.csv").read_bytes(), ctx("gcp"), catalog=catalog)
    # a3-highgpu-8g and g2-standard-4 are host-only prices, n1-highmem-8 a CPU VM; the TPU's 700.0 is a placeholder
    # price, refused as not_a_gpu before any price is read.
    assert sorted(r.reason for r in result.rejections) == ["no_accelerator"] * 3 + ["not_a_gpu"]
    h100 = [o for o in result.observations if o.instrument == "H100-SXM"]
    assert {(o.price_type, o.usd_price) for o in h100} == {
        (ON_DEMAND, Decimal("9.85")),  # 78.8 / 8
        (SPOT, Decimal("3.15")),  # 25.2 / 8
    }
    assert len(h100) == 4  # two zones
    assert all(o.attributes["price_scope"] == "gpu_only" for o in result.observations)
    t4 = [o for o in result.observations if o.instrument == "T4" and o.price_type == ON_DEMAND]
    assert [o.usd_price for o in t4] == [Decimal("0.35")]  # 1.4 / 4


def test_aggregator_rows_resolve_through_the_upstream_instance_name(catalog):
    result = skypilot.parse((FIXTURES / "primeintellect_vms.csv").read_bytes(), ctx("primeintellect"), catalog=catalog)
    by_type = {o.attributes["instance_type"]: o for o in result.observations}
    assert by_type["lambdalabs__8xH100_80GB__208__1800"].instrument == "H100-SXM"  # upstream gpu_8x_h100_sxm5
    assert by_type["lambdalabs__8xH100_80GB__208__1800"].usd_price == Decimal("2.99")  # 23.92 / 8
    assert by_type["hyperstack__1xH100_80GB__28__180"].instrument == "H100-PCIE"  # upstream n3-H100x1
    spot = by_type["datacrunch__8xH100_80GB__176__1480__SPOT"]  # upstream 8H100.80S.176V_SPOT; empty Price
    assert (spot.instrument, spot.price_type, spot.usd_price) == ("H100-SXM", SPOT, Decimal("0.855"))  # 6.84 / 8
    assert by_type["primecompute__8xH100_80GB__104__752"].instrument == "H100-SXM"  # 'NVIDIA H100 80GB HBM3_8'
    assert by_type["primecompute__8xH100_80GB__104__752"].usd_price == Decimal("2.5")  # 20.0 / 8
    assert by_type["crusoecloud__1xL40S_48GB__8__147"].attributes["upstream_cloud_id"] == "l40s-48gb.1x"
    # Nothing in 'someneocloud__1xH100_80GB__16__128' or 'h100-box' says SXM, PCIe or NVL: not guessed.
    [unknown] = result.rejections
    assert unknown.reason == "unknown_instrument" and "h100-box" in unknown.detail


def test_shadeform_memory_in_gb_and_resold_offers(catalog):
    result = skypilot.parse((FIXTURES / "shadeform_vms.csv").read_bytes(), ctx("shadeform"), catalog=catalog)
    by_type = {o.attributes["instance_type"]: o for o in result.observations}
    # 'SizeInMiB': 40 is 40 GB: the A100 40 GB card, 11.2 / 8 = 1.4.
    assert (by_type["denvr_A100-sxm4x8"].instrument, by_type["denvr_A100-sxm4x8"].usd_price) == ("A100-40GB", Decimal("1.4"))
    assert by_type["denvr_A100-sxm4x8"].attributes["gpu_memory_mib"] == 40960
    assert by_type["paperspace_H100"].instrument == "H100-SXM"
    assert (by_type["scaleway_H100x2"].instrument, by_type["scaleway_H100x2"].usd_price) == ("H100-PCIE", Decimal("3.3"))
    assert by_type["lambdalabs_H100-sxm5x2"].usd_price == Decimal("4.19")  # 8.38 / 2
    assert [r.reason for r in result.rejections] == ["unknown_instrument"]  # lambdalabs_H100: form factor unstated


def test_float_noise_prices_and_quoted_counts_are_read_exactly(catalog):
    # Cudo writes prices with binary float noise and GpuInfo counts as strings: the text is kept as it is.
    info = "\"{'Gpus': [{'Name': 'A40', 'Manufacturer': 'NVIDIA', 'Count': '2.0', 'MemoryInfo': {'SizeInMiB': 49152}}], 'TotalGpuMemoryInMiB': 98304}\""
    text = (
        "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,Region,GpuInfo,SpotPrice\n"
        f"ice-lake-a40-compute_2x8v16gb,A40,2.0,8,16,0.7791999999999999,ca-montreal-3,{info},\n"
    )
    [obs] = parse_text(text, "cudo", catalog).observations
    assert obs.original_price == Decimal("0.7791999999999999")
    assert obs.usd_price == Decimal("0.3896000000")  # 0.7791999999999999 / 2 = 0.38959999999999995, to 10 places


def test_duplicate_listing_with_another_price_takes_neither(catalog):
    # SimplePod lists the same machine type twice in one region at two prices (two hosts); no SpotPrice column.
    # Which one is the row's price cannot be known: taking the first (or the last) would let the order decide.
    text = (
        "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,Region,GpuInfo\n"
        "gpu_4x_rtx4090_128,RTX4090,4,128,512,1.280,Europe-PL,\n"
        "gpu_4x_rtx4090_128,RTX4090,4,128,512,1.360,Europe-PL,\n"
        "gpu_1x_rtx3060ti_14,RTX3060Ti,1,14,64,0.060,Europe-NO,\n"
    )
    result = parse_body(skypilot, text.encode(), ctx("simplepod"), catalog=catalog)
    assert [(o.instrument, o.usd_price) for o in result.observations] == [("RTX3060TI", Decimal("0.06"))]
    assert [r.reason for r in result.rejections] == ["conflicting_duplicate", "conflicting_duplicate"]


def test_gcp_style_rows_zone_and_attachable_gpus(catalog):
    text = (
        "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,Region,AvailabilityZone\n"
        ",T4,1,,,,0.35,0.14,us-central1,us-central1-a\n"
        ",T4,2,,,,0.70,0.28,us-central1,us-central1-a\n"
        "a3-highgpu-8g,H100,8,208,1872.0,,88.49,29.98,us-central1,us-central1-a\n"
        "a3-highgpu-8g,H100,8,208,1872.0,,88.49,29.98,us-central1,us-central1-b\n"
    )
    result = parse_body(skypilot, text.encode(), ctx("gcp"), catalog=catalog)
    assert result.rejections == []  # the attachable T4 x1 and x2 rows do not collide
    keys = {o.row_key for o in result.observations}
    assert "[T4 x1]|us-central1|us-central1-a|on_demand" in keys
    assert "[T4 x2]|us-central1|us-central1-a|on_demand" in keys
    zone_b = [o for o in result.observations if o.attributes.get("availability_zone") == "us-central1-b"]
    assert {(o.instrument, o.price_type, o.usd_price) for o in zone_b} == {
        ("H100-SXM", ON_DEMAND, Decimal("11.06125")),  # 88.49 / 8
        ("H100-SXM", SPOT, Decimal("3.7475")),  # 29.98 / 8
    }
    t4 = [o for o in result.observations if o.instrument == "T4"]
    assert {o.usd_price for o in t4} == {Decimal("0.35"), Decimal("0.14")}  # 0.70 / 2 = 0.35, 0.28 / 2 = 0.14


def test_runpod_v8_layout_zone_and_memory_in_gb(catalog):
    info = "\"{'Gpus': [{'Name': 'A100 PCIe', 'Manufacturer': 'Nvidia', 'Count': 2, 'MemoryInfo': {'SizeInMiB': 80}}], 'TotalGpuMemoryInMiB': 160}\""
    text = (
        "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Region,SpotPrice,Price,AvailabilityZone,GpuInfo\n"
        f"2x_A100-80GB_SECURE,A100-80GB,2.0,16.0,234.0,US,2.78,2.78,US-CA-1,{info}\n"
        f"2x_A100-80GB_SECURE,A100-80GB,2.0,16.0,234.0,US,2.78,2.78,US-CA-2,{info}\n"
    )
    result = parse_body(skypilot, text.encode(), ctx("runpod"), catalog=catalog)
    assert result.rejections == []  # two zones of one region are two rows
    assert len(result.observations) == 4
    for o in result.observations:
        assert (o.instrument, o.usd_price) == ("A100-80GB", Decimal("1.39"))  # 2.78 / 2
        assert o.attributes["gpu_memory_mib"] == 81920  # "80" is GB


def test_memory_hint_variants(catalog):
    text = (
        "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,Region\n"
        # Vast states the instance total: 1x = 40960, 2x = 81920 -> both are 40 GB cards.
        "1x-A100_SXM4-32-65536,A100,1,32,64.0,\"{'Gpus': [{'Name': 'A100', 'Count': 1, 'MemoryInfo': {'SizeInMiB': 40960}}], 'TotalGpuMemoryInMiB': 40960}\",1.20,0.00,\"Germany, DE, EU\"\n"
        "2x-A100_SXM4-32-65536,A100,2,32,64.0,\"{'Gpus': [{'Name': 'A100', 'Count': 2, 'MemoryInfo': {'SizeInMiB': 81920}}], 'TotalGpuMemoryInMiB': 81920}\",1.47,0.00,\"Slovenia, SI, EU\"\n"
        # nvidia-smi style 81559 MiB for an 80 GB card, and an NVL board named in the instance type.
        "2x-H100_NVL-32-65536,H100,2,32,64.0,\"{'Gpus': [{'Name': 'H100', 'Count': 2, 'MemoryInfo': {'SizeInMiB': 191660}}], 'TotalGpuMemoryInMiB': 191660}\",4.53,0.00,\"California, US, NA\"\n"
    )
    result = parse_text(text, "vast", catalog)
    assert result.rejections == []
    two = one(result.observations, "2x-A100_SXM4-32-65536", ON_DEMAND)
    assert (two.instrument, two.usd_price, two.attributes["gpu_memory_mib"]) == ("A100-40GB", Decimal("0.735"), 40960)
    nvl = one(result.observations, "2x-H100_NVL-32-65536", ON_DEMAND)
    assert (nvl.instrument, nvl.usd_price) == ("H100-NVL", Decimal("2.265"))  # 4.53 / 2
    assert nvl.attributes["gpu_memory_mib"] == 95830  # 191660 / 2, within 25% of 94 GB


def test_memory_reported_by_nvidia_smi_is_rounded_to_whole_gib(catalog):
    # nvidia-smi reports a little less than the nominal size: 81559 MiB for 80 GB, 40536 for 40 GB.
    info = "\"{'gpus': [{'name': 'a100', 'count': 1.0, 'memoryinfo': {'sizeinmib': %d}}], 'totalgpumemoryinmib': %d}\""
    text = LAMBDA_HEADER + "".join(
        f"gpu-a100-{mib},A100,1,20,240.0,1.50,nyc2,{info % (mib, mib)},\n" for mib in (81559, 40536)
    )
    result = parse_text(text, "do", catalog)
    assert result.rejections == []
    assert {o.attributes["instance_type"]: o.instrument for o in result.observations} == {
        "gpu-a100-81559": "A100-80GB",
        "gpu-a100-40536": "A100-40GB",
    }


def test_blank_lines_before_the_header_and_between_rows(catalog):
    text = "\r\n" + LAMBDA_HEADER + "\n" + "gpu_1x_a10,A10,1.0,30.0,200.0,0.75,us-east-1,,\n\n"
    result = parse_text(text, "lambda", catalog)
    assert [(o.instrument, o.usd_price) for o in result.observations] == [("A10", Decimal("0.75"))]
    assert result.rejections == []


def test_gpu_info_forms(catalog):
    header = "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,Region,SpotPrice\n"
    rows = {
        # Python-repr dict
        "a": "\"{'Gpus': [{'Name': 'A100', 'Manufacturer': 'NVIDIA', 'Count': 1, 'MemoryInfo': {'SizeInMiB': 40960}}], 'TotalGpuMemoryInMiB': 40960}\"",
        # all-lowercase keys (DigitalOcean)
        "b": "\"{'gpus': [{'name': 'a100', 'manufacturer': 'nvidia', 'count': 1.0, 'memoryinfo': {'sizeinmib': 40960}}], 'totalgpumemoryinmib': 40960}\"",
        # real JSON, CSV-escaped (Verda)
        "c": '"{""Gpus"": [{""Name"": ""A100"", ""Count"": 1, ""MemoryInfo"": {""SizeInMiB"": 40960}}], ""TotalGpuMemoryInMiB"": 40960}"',
        # Python quotes with JSON null (Hyperstack): neither parser accepts it
        "d": "\"{'Gpus': [{'Name': 'A100', 'Manufacturer': null, 'Count': 1, 'MemoryInfo': {'SizeInMiB': 40960}}], 'TotalGpuMemoryInMiB': 40960}\"",
    }
    text = header + "".join(f"{k},A100,1,8,64.0,{v},1.29,r1,\n" for k, v in rows.items())
    text += "e,A100,1,8,64.0,A100,1.29,r1,\n"  # a bare name: no memory, so a bare A100 cannot be told
    text += "f,A100,1,8,64.0,,1.29,r1,\n"  # empty
    result = parse_text(text, "somecloud", catalog)
    resolved = {o.attributes["instance_type"]: (o.instrument, o.attributes.get("gpu_memory_mib")) for o in result.observations}
    assert resolved == {k: ("A100-40GB", 40960) for k in "abcd"}
    assert sorted(r.row_key.split("|")[0] for r in result.rejections if r.reason == "unknown_instrument") == ["e", "f"]


def test_gpu_info_name_is_a_fallback(catalog):
    # Hyperstack's AcceleratorName is enough; a made-up label is rescued by GpuInfo's own name.
    info = "\"{'Gpus': [{'Name': 'H100-80G-PCIe', 'Manufacturer': null, 'Count': 1, 'MemoryInfo': {'SizeInMiB': 81920}}], 'TotalGpuMemoryInMiB': 81920}\""
    text = (
        "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,Region,SpotPrice\n"
        f"n3-H100x1,H100-80G-PCIe,1,28,180.0,{info},1.9,CANADA-1,\n"
        f"n3-H100x1-new,H100-NEWLABEL,1,28,180.0,{info},1.9,CANADA-1,\n"
    )
    result = parse_text(text, "hyperstack", catalog)
    assert [(o.instrument, o.source_instrument) for o in result.observations] == [
        ("H100-PCIE", "H100-80G-PCIe"),
        ("H100-PCIE", "H100-NEWLABEL"),
    ]


def test_nebius_cpu_rows_with_count_zero_and_host_ram_as_memory(catalog):
    text = (
        "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,Region,GpuInfo,SpotPrice\n"
        "cpu-d3_4vcpu-16gb,,0,4,16,0.0992,eu-north1,,\n"
        "gpu-h100-sxm_8gpu-128vcpu-1600gb,H100,8,128,1600,23.60,eu-north1,\"{'Gpus': [{'Name': 'H100', 'Manufacturer': 'NVIDIA', 'Count': 8, 'MemoryInfo': {'SizeInMiB': 204800}}], 'TotalGpuMemoryInMiB': 1638400}\",10.00\n"
    )
    result = parse_text(text, "nebius", catalog)
    assert [r.reason for r in result.rejections] == ["no_accelerator"]
    od = one(result.observations, "gpu-h100-sxm_8gpu-128vcpu-1600gb", ON_DEMAND)
    assert (od.instrument, od.usd_price) == ("H100-SXM", Decimal("2.95"))  # 23.60 / 8
    assert one(result.observations, "gpu-h100-sxm_8gpu-128vcpu-1600gb", SPOT).usd_price == Decimal("1.25")  # 10.00 / 8
    assert "gpu_memory_mib" not in od.attributes  # 204800 MiB is host RAM, not an H100's memory


def test_bom_crlf_column_case_and_order(catalog):
    plain = LAMBDA_HEADER + "gpu_1x_a10,A10,1.0,30.0,200.0,0.75,us-east-1,,\n"
    reordered = (
        "\ufeffREGION,price,gpuinfo,acceleratorcount,InstanceType,AcceleratorName\r\n"
        "us-east-1,0.75,,1.0,gpu_1x_a10,A10\r\n"
    )
    a = parse_text(plain, "lambda", catalog).observations
    b = skypilot.parse(reordered.encode("utf-8"), ctx("lambda"), catalog=catalog).observations
    assert len(a) == len(b) == 1
    assert a == b  # same row key, price and attributes whatever the layout


def test_missing_columns_raise(catalog):
    with pytest.raises(ParseError, match="AcceleratorCount"):
        parse_text("InstanceType,AcceleratorName,Price,Region\nx,A10,1,r\n", "lambda", catalog)
    with pytest.raises(ParseError, match="Price or SpotPrice"):
        parse_text("InstanceType,AcceleratorName,AcceleratorCount,Region\nx,A10,1,r\n", "lambda", catalog)
    # A body whose first line is data, not a header.
    with pytest.raises(ParseError, match="InstanceType"):
        parse_text("gpu_1x_a10,A10,1.0,30.0,200.0,0.75,us-east-1,,\n", "lambda", catalog)


@pytest.mark.parametrize("body", [b"", b"\n\r\n  \n", b"\xef\xbb\xbf"])
def test_empty_body_raises(catalog, body):
    with pytest.raises(ParseError, match="empty"):
        skypilot.parse(body, ctx("lambda"), catalog=catalog)


def test_body_of_empty_cells_has_no_header(catalog):
    with pytest.raises(ParseError, match="no header"):
        parse_text(",,,\n,,\n", "lambda", catalog)


def test_not_utf8_raises(catalog):
    with pytest.raises(ParseError, match="UTF-8"):
        skypilot.parse(LAMBDA_HEADER.encode() + b"gpu_\xff,A10,1,1,1,1,r,,\n", ctx("lambda"), catalog=catalog)


def test_header_only_body_is_empty_not_an_error(catalog):
    result = parse_text(LAMBDA_HEADER, "lambda", catalog)
    assert result.observations == [] and result.rejections == []


def test_provider_is_required(catalog):
    with pytest.raises(ParseError, match="provider"):
        skypilot.parse((FIXTURES / "lambda_vms.csv").read_bytes(), ctx(None), catalog=catalog)


def test_short_row_is_malformed(catalog):
    result = parse_text(LAMBDA_HEADER + "gpu_1x_a10,A10,1.0\n", "lambda", catalog)
    assert [r.reason for r in result.rejections] == ["malformed_row"]
    assert result.rejections[0].raw_excerpt == "gpu_1x_a10,A10,1.0"


def test_prices_are_never_floats(catalog):
    result = skypilot.parse((FIXTURES / "verda_vms.csv").read_bytes(), ctx("verda"), catalog=catalog)
    for o in result.observations:
        assert type(o.usd_price) is Decimal and type(o.original_price) is Decimal and type(o.gpu_count) is Decimal


# ----------------------------------------------------------------------------------------- the GPU catalog


@pytest.mark.parametrize(
    "name, provider, instance_type, memory, expected",
    [
        ("H100", "lambda", "gpu_1x_h100_pcie", 81920, "H100-PCIE"),
        ("H100", "lambda", "gpu_8x_h100_sxm5", 81920, "H100-SXM"),
        ("H100", "fluidstack", "H100_PCIE_80GB::4", 81920, "H100-PCIE"),
        ("H100", "fluidstack", "H100_NVLINK_80GB::8", 81920, "H100-SXM"),
        ("H100-80GB-HBM3", "runpod", "8x_H100-80GB-HBM3_COMMUNITY", None, "H100-SXM"),
        ("H100", "runpod", "1x_H100_SECURE", None, "H100-PCIE"),
        ("H100", "verda", "1H100.80S.30V", 81920, "H100-SXM"),
        ("H100", "do", "gpu-h100x8-640gb", 81920, "H100-SXM"),
        ("H100", "paperspace", "H100x8", None, "H100-SXM"),
        ("A100", "lambda", "gpu_8x_a100", 40960, "A100-40GB"),
        ("A100-80GB-160GB", "verda", "2A100.44V", None, "A100-80GB"),
        ("Tesla-V100", "verda", "1V100.6V", 16384, "V100-16GB"),
        ("V100", "paperspace", "V100", None, "V100-16GB"),
        ("V100-32GB", "paperspace", "V100-32G", None, "V100-32GB"),
        ("RTX-6000-Ada", "verda", "1RTX6000ADA.10V", None, "RTX6000-ADA"),
        ("RTX-PRO-6000", "verda", "1RTXPRO6000.30V", None, "RTXPRO6000"),
        ("A6000", "lambda", "gpu_1x_a6000", 49152, "RTXA6000"),
        ("H100", "someone", "h100-box", 81920, None),  # form factor unknown: not guessed
        ("A100", "someone", "a100-box", None, None),  # 40 or 80 GB: not guessed
        ("RTX6000", "someone", "rtx6000-box", None, None),  # Quadro RTX 6000 or RTX PRO 6000: not guessed
    ],
)
def test_catalog_aliases(catalog, name, provider, instance_type, memory, expected):
    resolution = catalog.resolve_gpu(name, provider=provider, instance_type=instance_type, gpu_memory_mib=memory)
    assert resolution.canonical == expected


@pytest.mark.parametrize(
    "name, provider, instance_type, memory, expected",
    [
        # Names seen in the real data of the sources added later (Vast API, Hyperbolic, SimplePod, pricing pages).
        ("NVIDIA-H100-80GB-HBM3", "hyperbolic", "1x-H100-75-722", 81920, "H100-SXM"),
        ("RTX 4070S Ti", "vast", "RTX 4070S Ti", None, "RTX4070TI-SUPER"),
        ("RTX_4070S", "vast", "", None, "RTX4070-SUPER"),
        ("Q RTX 8000", "vast", "", None, "QUADRO-RTX8000"),
        ("Tesla V100", "vast", "", 32768, "V100-32GB"),
        ("A100 PCIE", "vast", "", 40960, "A100-40GB"),
        ("A100 PCIE", "vast", "", None, None),  # 40 or 80 GB: not guessed
        ("A800 PCIE", "vast", "", 40960, "A800-40GB"),
        ("InstinctMI50", "vast", "", None, "MI50"),
        ("RTX3060Ti", "simplepod", "gpu_1x_rtx3060ti_14", None, "RTX3060TI"),
        ("RTX PRO 6000 Blackwell", "simplepod", "", None, "RTXPRO6000"),
        ("Radeon MI25", "azure", "Standard_NV4as_v4", None, "MI25"),
        ("H100", "coreweave", "NVIDIA HGX H100", None, "H100-SXM"),
        ("H100", "lambda", "On-demand 1x NVIDIA H100 PCIe", None, "H100-PCIE"),
    ],
)
def test_catalog_aliases_of_later_sources(catalog, name, provider, instance_type, memory, expected):
    resolution = catalog.resolve_gpu(name, provider=provider, instance_type=instance_type, gpu_memory_mib=memory)
    assert resolution.canonical == expected


def test_catalog_bands_and_required_gpus(catalog):
    required = """H100-SXM H100-PCIE H100-NVL H200 B200 B300 GH200 A100-80GB A100-40GB L40S L40 L4 A10 A10G RTX4090
        RTX3090 RTXA6000 RTXA5000 RTXA4000 RTX6000-ADA RTXPRO6000 A40 A30 V100-16GB V100-32GB T4 MI300X""".split()
    for gpu in required:
        band = catalog.band("gpu", gpu)
        assert band is not None and Decimal(0) < band.low < band.high, gpu
    h100 = catalog.band("gpu", "H100-SXM")
    assert (h100.low, h100.high) == (Decimal("0.10"), Decimal("50"))
    assert catalog.band("gpu", "RTX4090").high == Decimal("10")


def test_shipped_catalog_files_load():
    # The loader refuses an alias whose canonical id is missing from gpus.csv; build from the shipped files.
    rows = list(csv.DictReader(line for line in (CATALOG_DIR / "gpu_aliases.csv").open() if not line.startswith("#")))
    gpus = {r["canonical_gpu"] for r in csv.DictReader(l for l in (CATALOG_DIR / "gpus.csv").open() if not l.startswith("#"))}
    assert rows and all(r["canonical_gpu"] in gpus for r in rows)
    # A provider rule without an instance-type pattern claims a whole fleet: it must say why.
    assert all(r["note"].strip() for r in rows if r["provider"] and not r["instance_type_pattern"])


# ----------------------------------------------------------------------------------------- requests, fetch, files


def test_requests():
    reqs = skypilot.requests()
    base = "https://raw.githubusercontent.com/skypilot-org/skypilot-catalog/master/catalogs"
    assert [(r.source, r.url, r.provider) for r in reqs] == [
        ("skypilot", f"{base}/v7/lambda/vms.csv", "lambda"),
        ("skypilot", f"{base}/v7/runpod/vms.csv", "runpod"),
        ("skypilot", f"{base}/v7/fluidstack/vms.csv", "fluidstack"),
        ("skypilot", f"{base}/v7/paperspace/vms.csv", "paperspace"),
        ("skypilot", f"{base}/v7/do/vms.csv", "do"),
        ("skypilot", f"{base}/v8/verda/vms.csv", "verda"),
        ("skypilot", f"{base}/v7/nebius/vms.csv", "nebius"),
        ("skypilot", f"{base}/v7/vast/vms.csv", "vast"),
        ("skypilot", f"{base}/v8/hyperstack/vms.csv", "hyperstack"),
        ("skypilot", f"{base}/v8/aws/vms.csv", "aws"),
        ("skypilot", f"{base}/v8/gcp/vms.csv", "gcp"),
        ("skypilot", f"{base}/v8/cudo/vms.csv", "cudo"),
        ("skypilot", f"{base}/v8/hyperbolic/vms.csv", "hyperbolic"),
        ("skypilot", f"{base}/v8/mithril/vms.csv", "mithril"),
        ("skypilot", f"{base}/v8/primeintellect/vms.csv", "primeintellect"),
        ("skypilot", f"{base}/v8/seeweb/vms.csv", "seeweb"),
        ("skypilot", f"{base}/v8/shadeform/vms.csv", "shadeform"),
        ("skypilot", f"{base}/v7/simplepod/vms.csv", "simplepod"),
    ]
    assert [r.url for r in skypilot.requests(clouds=["nebius", "verda"])] == [
        f"{base}/v7/nebius/vms.csv",
        f"{base}/v8/verda/vms.csv",
    ]
    with pytest.raises(ValueError, match="unknown SkyPilot cloud"):
        skypilot.requests(clouds=["nowhere"])


def test_fetch_uses_the_request_url_and_clock():
    body = (FIXTURES / "lambda_vms.csv").read_bytes()
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, content=body, headers={"Content-Type": "text/csv; charset=utf-8"})

    [request] = skypilot.requests(clouds=["lambda"])
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        fetched = skypilot.fetch(client, request, clock=lambda: WHEN)
    assert seen == [request.url]
    assert (fetched.status, fetched.body, fetched.fetched_at) == (200, body, WHEN)


@pytest.mark.parametrize(
    "path, provider",
    [
        ("x/v7/lambda_vms.csv", "lambda"),
        ("x/v8/verda_vms_older.csv", "verda"),
        ("catalogs/v7/runpod/vms.csv", "runpod"),
        ("DO_VMS.csv", "do"),
    ],
)
def test_context_for_file(tmp_path, path, provider):
    context = skypilot.context_for_file(tmp_path / path, WHEN)
    assert (context.source, context.provider, context.observed_at) == ("skypilot", provider, WHEN)


@pytest.mark.parametrize("path", ["prices.csv", "_vms.csv"])
def test_context_for_file_refuses_unknown_names(tmp_path, path):
    with pytest.raises(ValueError, match="cannot tell the cloud"):
        skypilot.context_for_file(tmp_path / path, WHEN)


# ----------------------------------------------------------------------------------------- the real samples

REAL_FILES = sorted(REAL_SKYPILOT.glob("*/*.csv")) if REAL_SKYPILOT.is_dir() else []

# Rejections each real file may produce, and why: CPU-only instances, and RunPod v5 listing 8 instances twice in
# one country (two data centres before the catalog had an AvailabilityZone column) -- identical lines, so the
# second copy adds nothing.
EXPLAINED = {"no_accelerator", "duplicate_row"}
# (observations, rejections by reason), counted by hand from the files:
EXPECTED_COUNTS = {
    "v5/lambda_vms.csv": (270, {"no_accelerator": 15}),  # 18 GPU types x 15 regions; 1 CPU type x 15
    "v7/lambda_vms.csv": (306, {"no_accelerator": 17}),  # 18 x 17; 1 x 17
    "v5/runpod_vms.csv": (280, {"duplicate_row": 16}),  # 148 rows x 2 prices = 296, less 8 repeated lines x 2
    "v6/fluidstack_vms.csv": (23, {}),  # 23 rows, no spot
    "v6/paperspace_vms.csv": (14, {"no_accelerator": 5}),  # C5..C9
    "v6/do_vms.csv": (2, {"no_accelerator": 36}),  # 6 CPU droplets x 6 regions; 2 H100 rows
    "v8/verda_vms_older.csv": (83, {}),  # 45 rows x 2 prices, less 7 empty SpotPrice
}


def _real(rel: str, catalog: Catalog):
    path = REAL_SKYPILOT / rel
    if not path.exists():
        pytest.skip(f"{path} is absent")
    context = skypilot.context_for_file(path, WHEN)
    return parse_body(skypilot, path.read_bytes(), context, catalog=catalog)


@pytest.mark.skipif(not REAL_SKYPILOT.is_dir(), reason="../shared/data/real is absent")
@pytest.mark.parametrize("path", REAL_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_real_file_parses_cleanly(catalog, path):
    rel = f"{path.parent.name}/{path.name}"
    result = _real(rel, catalog)
    got_reasons = reasons(result)
    assert set(got_reasons) <= EXPLAINED, got_reasons
    assert "unknown_instrument" not in got_reasons
    if rel in EXPECTED_COUNTS:
        assert (len(result.observations), got_reasons) == EXPECTED_COUNTS[rel]
    # Every GPU row gives at least one observation (read the file independently of the parser).
    with path.open(newline="", encoding="utf-8-sig") as handle:
        gpu_rows = {
            (r["InstanceType"], r["Region"], r.get("AvailabilityZone") or "")
            for r in csv.DictReader(handle)
            if r["AcceleratorName"].strip()
        }
    observed = {
        (o.attributes["instance_type"], o.region or "", o.attributes.get("availability_zone", ""))
        for o in result.observations
    }
    assert observed == gpu_rows
    # Per-GPU prices inside the sanity bands is checked by parse_body; make sure bands were applied.
    assert all(catalog.band("gpu", o.instrument) is not None for o in result.observations)


@pytest.mark.parametrize(
    "rel, instance_type, region, price_type, instrument, original, usd",
    [
        ("v7/lambda_vms.csv", "gpu_8x_h100_sxm5", "us-east-3", ON_DEMAND, "H100-SXM", "23.92", "2.99"),
        ("v7/lambda_vms.csv", "gpu_1x_h100_pcie", "australia-east-1", ON_DEMAND, "H100-PCIE", "2.49", "2.49"),
        ("v5/lambda_vms.csv", "gpu_8x_a100", "us-west-1", ON_DEMAND, "A100-40GB", "10.32", "1.29"),
        ("v6/fluidstack_vms.csv", "H100_PCIE_80GB::4", "UTAH_USA", ON_DEMAND, "H100-PCIE", "11.56", "2.89"),
        ("v6/fluidstack_vms.csv", "H100_NVLINK_80GB::8", "FINLAND", ON_DEMAND, "H100-SXM", "23.92", "2.99"),
        ("v8/verda_vms_older.csv", "8H200.141S.176V", "FIN-03", ON_DEMAND, "H200", "20.72", "2.59"),
        ("v8/verda_vms_older.csv", "8H200.141S.176V", "FIN-03", SPOT, "H200", "10.36", "1.295"),
        ("v8/verda_vms_older.csv", "8A100.40S.176V", "FIN-03", ON_DEMAND, "A100-40GB", "5.77", "0.72125"),
        ("v8/verda_vms_older.csv", "2V100.10V", "FIN-03", ON_DEMAND, "V100-16GB", "0.28", "0.14"),
        ("v6/paperspace_vms.csv", "A100-80Gx8", "East Coast (NY2)", ON_DEMAND, "A100-80GB", "25.44", "3.18"),
        ("v6/paperspace_vms.csv", "GPU+", "East Coast (NY2)", ON_DEMAND, "QUADRO-M4000", "0.45", "0.45"),
        ("v6/do_vms.csv", "gpu-h100x8-640gb", "tor1", ON_DEMAND, "H100-SXM", "47.60", "5.95"),
        ("v5/runpod_vms.csv", "8x_H100-80GB-HBM3_COMMUNITY", "US", SPOT, "H100-SXM", "19.92", "2.49"),
        ("v5/runpod_vms.csv", "2x_RTXA6000_SECURE", "US", SPOT, "RTXA6000", "0.98", "0.49"),
    ],
)
def test_real_file_hand_checked_values(catalog, rel, instance_type, region, price_type, instrument, original, usd):
    result = _real(rel, catalog)
    obs = one(result.observations, instance_type, price_type, region)
    assert obs.instrument == instrument
    assert obs.original_price == Decimal(original)
    assert obs.usd_price == Decimal(usd)


def test_real_verda_memory_bug_is_corrected(catalog):
    result = _real("v8/verda_vms_older.csv", catalog)
    # 8x H100 states 655360 MiB "per GPU" (8 x 81920): the parser keeps 81920.
    assert one(result.observations, "8H100.80S.176V", ON_DEMAND, "FIN-03").attributes["gpu_memory_mib"] == 81920
    assert one(result.observations, "4B200.120V", ON_DEMAND, "FIN-03").attributes["gpu_memory_mib"] == 184320


# ----------------------------------------------------------------------------------------- the demo recordings

DEMO_DATES = ["2026-11-16", "2026-11-17", "2026-11-18", "2026-11-19", "2026-11-20"]
CRLF_CLOUDS = {"lambda", "fluidstack", "verda"}  # as in the real files
# Clouds whose real catalogs list GPU machines only (no CPU-only row), and those that never leave a SpotPrice cell
# empty (Mithril writes its auction price in both columns, Vast writes 0.00, GCP prices spot for every machine and
# GPU the recordings hold) or have no SpotPrice column at all (SimplePod).
NO_CPU_ROW_CLOUDS = {"runpod", "fluidstack", "vast", "hyperstack", "cudo", "hyperbolic", "mithril", "primeintellect",
                     "shadeform", "simplepod"}
NO_EMPTY_SPOT_CLOUDS = {"mithril", "vast", "simplepod", "gcp"}


def _manifest(date: str) -> list[dict]:
    return tomllib.loads((DEMO / date / "manifest-skypilot.toml").read_text())["response"]


@pytest.mark.parametrize("date", DEMO_DATES)
def test_demo_manifest_covers_exactly_the_requests(date):
    responses = _manifest(date)
    assert [r["url"] for r in responses] == [r.url for r in skypilot.requests()]
    for response in responses:
        assert (DEMO / date / response["file"]).is_file()
        failed = date == "2026-11-19" and "/paperspace/" in response["url"]
        assert response["status"] == (503 if failed else 200)
        assert response["content_type"].startswith("text/plain" if failed else "text/csv")


@pytest.mark.parametrize("date", DEMO_DATES)
def test_demo_recordings_parse_and_feed_the_indices(catalog, date):
    by_instrument: dict[str, set[str]] = {}
    for request, response in zip(skypilot.requests(), _manifest(date)):
        if response["status"] != 200:
            continue
        raw = (DEMO / date / response["file"]).read_bytes()
        lines = raw.decode().splitlines(keepends=True)
        assert 5 <= len(lines) - 1 <= 25
        assert all(line.endswith("\r\n") for line in lines) == (request.provider in CRLF_CLOUDS)
        result = parse_body(skypilot, raw, ParseContext("skypilot", WHEN, request.url, provider=request.provider), catalog)
        assert set(reasons(result)) <= {"no_accelerator"}
        if request.provider not in NO_CPU_ROW_CLOUDS:
            assert reasons(result).get("no_accelerator", 0) >= 1  # a CPU row, as in the real format
        header = lines[0].strip().split(",")
        if request.provider not in NO_EMPTY_SPOT_CLOUDS:
            spot = header.index("SpotPrice")
            assert any(row[spot] == "" for row in csv.reader(lines[1:]))  # at least one empty SpotPrice
        for o in result.observations:
            if o.price_type == ON_DEMAND:
                by_instrument.setdefault(o.instrument, set()).add(o.provider)
    assert len(by_instrument["H100-SXM"]) >= 5  # even on 2026-11-19, when Paperspace fails
    assert len(by_instrument["A100-80GB"]) >= 4
    # H100 PCIe: two specialist clouds of the first six (Lambda, FluidStack) and Hyperstack and Prime Intellect
    # (specialists, so the index has 4), and Shadeform's resold Scaleway card (a marketplace: not in that index).
    assert by_instrument["H100-PCIE"] == {"lambda", "fluidstack", "hyperstack", "primeintellect", "shadeform"}
    # Three hyperscalers price the 8-GPU H100 and A100 80GB machines (Azure's from its own source).
    assert {"aws", "gcp"} <= by_instrument["H100-SXM"] and {"aws", "gcp"} <= by_instrument["A100-80GB"]


def test_demo_prices_move_for_some_clouds_only():
    def body(date: str, cloud: str) -> bytes:
        return (DEMO / date / "skypilot" / f"{cloud}_vms.csv").read_bytes()

    for cloud in ("lambda", "do"):
        assert len({body(d, cloud) for d in DEMO_DATES}) == 1
    for cloud in ("runpod", "verda"):
        assert len({body(d, cloud) for d in DEMO_DATES}) == len(DEMO_DATES)
    assert len({body(d, "fluidstack") for d in DEMO_DATES}) > 1
    assert (DEMO / "2026-11-19" / "skypilot" / "paperspace_503.txt").read_bytes().startswith(b"503")


def test_h100_sxm_from_the_real_catalogs_lands_in_a_plausible_range(catalog):
    """One provider, one vote over the real SkyPilot files (Lambda's newer v7 file only): each provider's median
    on-demand H100 SXM price per GPU-hour, then the median of those. Worked out from the files by hand:
      verda 1.99 (every 80S size), fluidstack 23.92 / 8 = 2.99, lambda 3.14 (17 regions x 2.99, 3.09, 3.19, 3.29:
      the 34th and 35th of 68 values are 3.09 and 3.19), runpod 35.92 / 8 = 4.49 (community), paperspace 5.95,
      do (47.60 / 8 = 5.95 and 6.74) / 2 = 6.345.
    Six providers: the median is (3.14 + 4.49) / 2 = 3.815 USD per GPU-hour."""
    by_provider: dict[str, list[Decimal]] = {}
    for path in REAL_FILES:
        if path.parent.name == "v5" and path.name == "lambda_vms.csv":
            continue
        context = skypilot.context_for_file(path, WHEN)
        for o in parse_body(skypilot, path.read_bytes(), context, catalog=catalog).observations:
            if o.instrument == "H100-SXM" and o.price_type == ON_DEMAND:
                by_provider.setdefault(o.provider, []).append(o.usd_price)
    if not by_provider:
        pytest.skip("../shared/data/real is absent")

    def median(values: list[Decimal]) -> Decimal:
        ordered, middle = sorted(values), len(values) // 2
        return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2

    provider_values = {p: median(v) for p, v in by_provider.items()}
    assert provider_values == {
        "verda": Decimal("1.99"), "fluidstack": Decimal("2.99"), "lambda": Decimal("3.14"),
        "runpod": Decimal("4.49"), "paperspace": Decimal("5.95"), "do": Decimal("6.345"),
    }
    assert median(list(provider_values.values())) == Decimal("3.815")


# ----------------------------------------------------------------------------------------- hostile bodies (issue 10)


def test_a_body_without_its_last_line_end_is_cut_short(catalog):
    body = LAMBDA_HEADER + "gpu_1x_a10,A10,1.0,30.0,200.0,0.75,us-east-1,,\ngpu_1x_h100_pcie,H100,1.0,26.0,200.0,2"
    with pytest.raises(ParseError, match="cut short"):
        parse_text(body, "lambda", catalog)
    assert len(parse_text(body + ".49,us-east-1,,\r\n", "lambda", catalog).observations) == 2


def test_every_real_catalog_and_recording_ends_with_a_line_end():
    paths = sorted(REAL_SKYPILOT.glob("*/*.csv")) + sorted(DEMO.glob("*/skypilot/*.csv"))
    assert paths and all(p.read_bytes().endswith(b"\n") for p in paths)


@pytest.mark.parametrize("header", [
    LAMBDA_HEADER.replace(",Price,", ",Price,price,"),
    LAMBDA_HEADER.replace(",Region,", ",Region,REGION,"),
    LAMBDA_HEADER.replace(",GpuInfo,", ",GpuInfo,GPUInfo,"),
])
def test_a_repeated_column_that_the_parser_reads_fails_the_body(header, catalog):
    row = "gpu_1x_a10,A10,1.0,30.0,200.0,0.75,0.75,us-east-1,,\n"
    with pytest.raises(ParseError, match="repeats column"):
        parse_text(header + row, "lambda", catalog)


def test_a_repeated_column_that_is_not_read_is_harmless(catalog):
    header = LAMBDA_HEADER.replace(",vCPUs,", ",vCPUs,VCPUS,")
    result = parse_text(header + "gpu_1x_a10,A10,1.0,30.0,30.0,200.0,0.75,us-east-1,,\n", "lambda", catalog)
    assert [o.usd_price for o in result.observations] == [Decimal("0.75")]


@pytest.mark.parametrize("price", ["1e20", "100000000000000000000", "NaN", "-Infinity", "1_000", "9" * 70])
def test_a_poisoned_price_is_a_bad_price_never_an_exception(price, catalog):
    result = parse_body(skypilot, (LAMBDA_HEADER + f"gpu_8x_a10,A10,8.0,30.0,200.0,{price},us-east-1,,\n").encode(),
                        ctx("lambda"), catalog=catalog)
    assert [r.reason for r in result.rejections] == ["bad_price"] and result.observations == []


def test_a_tiny_gpu_count_cannot_make_a_price_beyond_any_bound(catalog):
    result = parse_body(skypilot, (LAMBDA_HEADER + "gpu_x_a10,A10,1e-9,30.0,200.0,3.18,us-east-1,,\n").encode(),
                        ctx("lambda"), catalog=catalog)
    assert [r.reason for r in result.rejections] == ["bad_price"]


@pytest.mark.parametrize("cell", [
    '"{\'Gpus\': ' + "[" * 5000 + "]" * 5000 + '}"',  # 5,000 deep, 10,010 characters
    '"{""Gpus"": ' + "[" * 1000 + "]" * 1000 + '}"',  # JSON 1,000 deep: json.loads raised RecursionError
    '"{\'Gpus\': [{\'Name\': \'A10\', \'MemoryInfo\': {\'SizeInMiB\': ' + "9" * 5000 + '}}]}"',  # int() of 5,000 digits
    '"{""Gpus"": [{""Name"": ""A10"", ""MemoryInfo"": {""SizeInMiB"": Infinity}}]}"',  # int(inf): OverflowError
])
def test_a_hostile_gpu_info_cell_refuses_its_row_or_is_ignored_never_raises(cell, catalog):
    body = LAMBDA_HEADER + f"gpu_1x_a10,A10,1.0,30.0,200.0,0.75,us-east-1,{cell},\n"
    body += "gpu_1x_h100_pcie,H100,1.0,26.0,200.0,2.49,us-east-1,,\n"
    result = parse_body(skypilot, body.encode(), ctx("lambda"), catalog=catalog)
    assert [o.instrument for o in result.observations][-1] == "H100-PCIE"
    assert {r.reason for r in result.rejections} <= {"malformed_row"}
    assert len(result.observations) + len(result.rejections) == 2


# ----------------------------------------------------------------------------------------- the columnar path's reader
# parse_columns reads a catalog in plain CSV with polars (pipeline/sources/skypilot_cells.py) and any other body with
# the readable path's own reader. Either way it must give what parse() gives; the bodies below are built so that
# polars reads the first kind (the readable reader is never called) and hands over the second.

AWS_HEADER = "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,Region,AvailabilityZone\n"
H100_INFO = ('"{\'Gpus\': [{\'Name\': \'H100\', \'Manufacturer\': \'NVIDIA\', \'Count\': 8, '
             '\'MemoryInfo\': {\'SizeInMiB\': 81920}}], \'TotalGpuMemoryInMiB\': 655360}"')
P5 = f"p5.48xlarge,H100,8.0,192.0,2048.0,{H100_INFO},98.32,31.4624,us-east-1,use1-az2\n"  # 12.29 and 3.9328 a GPU-hour


def _columnar_rows(result) -> list[dict]:
    return result.observations.drop("_seq").to_dicts()


def _readable_rows(result) -> list[dict]:
    return frame_from_observations(result.observations).drop("_seq").to_dicts()


def _rejection_keys(rejections) -> list[tuple]:
    return sorted((r.row_key, r.reason, r.detail, r.raw_excerpt) for r in rejections)


def _assert_paths_agree(raw: bytes, provider: str, catalog: Catalog) -> tuple:
    """parse() and parse_columns() give the same rows, in the same order, and the same rejections; returned."""
    readable = skypilot.parse(raw, ctx(provider), catalog=catalog)
    columnar = skypilot.parse_columns(raw, ctx(provider), catalog=catalog)
    assert _columnar_rows(columnar) == _readable_rows(readable)
    assert _rejection_keys(columnar.rejections) == _rejection_keys(readable.rejections)
    return readable, columnar


@pytest.fixture
def readable_reader_calls(monkeypatch) -> list[int]:
    """How many times parse_columns handed its body to the readable path's reader."""
    calls: list[int] = []
    original = skypilot_cells._read_rows

    def counting(raw):
        calls.append(len(raw))
        return original(raw)

    monkeypatch.setattr(skypilot_cells, "_read_rows", counting)
    return calls


def _tied_memories(first_mib: int, then_mib: int) -> str:
    """Single-GPU A100 rows stating two memories equally often, and a 2-GPU row stating 81920 MiB."""
    info = "\"{{'Gpus': [{{'Name': 'A100', 'MemoryInfo': {{'SizeInMiB': {}}}}}]}}\""
    rows = [f"gpu_1x_a100_{n},A100,1,8,64,{info.format(mib)},1.5,,r{n},\n"
            for n, mib in enumerate((first_mib, then_mib, then_mib, first_mib))]
    return AWS_HEADER + "".join(rows) + f"gpu_2x_a100,A100,2,16,128,{info.format(81920)},4,,r9,\n"


PLAIN_BODIES = {
    "crlf and a BOM": ("\ufeff" + AWS_HEADER + P5).replace("\n", "\r\n"),
    "crlf after a quoted last cell and an empty one": (
        "InstanceType,AcceleratorName,AcceleratorCount,Price,SpotPrice,Region,GpuInfo\r\n"
        f"p5.48xlarge,H100,8.0,98.32,31.4624,us-east-1,{H100_INFO}\r\n"
        "p5.48xlarge,H100,8.0,98.32,31.4624,us-west-2,\r\n"
    ),
    "quotes doubled inside a quoted cell": AWS_HEADER + P5.replace("use1-az2", '"use1 ""az2"" \\\\ east"'),
    "cells padded with whitespace": AWS_HEADER + P5.replace(",H100,8.0,", ", H100\t,  8.0 ,").replace(
        ",us-east-1,", ",\x1f us-east-1 \x0c,"),
    "blank lines and rows of another field count": (
        AWS_HEADER + P5 + "\n" + "   \n" + P5.replace("us-east-1", "us-west-2")
        + "p5.48xlarge,H100,8.0\n"  # 3 fields
        + ",,,,,,,,,\n" + '"","",,,,,,,,\n'  # blank: every cell empty
        + P5.replace("use1-az2\n", 'use1-az2,"x,y"\n')  # 11 fields
        + '"""",,,,,,,,,\n'  # not blank: its first cell is a quote
        + P5.replace("us-east-1", "eu-west-1")
    ),
    "a fractional count and prices that are not plain": AWS_HEADER
        + "gr6f.4xlarge,L4,0.5,16.0,128.0,,1.066,0.3056,us-east-1,use1-az1\n"
        + P5.replace("98.32", "9.832E1").replace("31.4624", "-1"),
    "memory stated equally often two ways": _tied_memories(81920, 40960),
    "a header only": AWS_HEADER,
}


@pytest.mark.parametrize("name", list(PLAIN_BODIES))
def test_plain_csv_is_read_by_column_as_parse_reads_it(name, catalog, readable_reader_calls):
    _assert_paths_agree(PLAIN_BODIES[name].encode("utf-8"), "aws", catalog)
    assert readable_reader_calls == []


@pytest.mark.parametrize("first_mib, then_mib, expected", [(81920, 40960, "A100-80GB"), (40960, 81920, "A100-40GB")])
def test_memories_stated_equally_often_are_decided_by_the_first_seen_on_both_paths(first_mib, then_mib, expected,
                                                                                  catalog):
    # The single-GPU rows state each memory twice: the reference is the one seen first. 81920 over 2 GPUs is then
    # the memory of one GPU (the reference is 81920) or of both (it is 40960, and 81920 = 2 x 40960).
    _, columnar = _assert_paths_agree(_tied_memories(first_mib, then_mib).encode(), "aws", catalog)
    two = columnar.observations.filter(columnar.observations["gpu_count"] == 2)
    assert two["instrument"].to_list() == [expected]


def test_plain_csv_cells_are_unquoted_and_stripped_as_the_csv_module_does(catalog, readable_reader_calls):
    _, quoted = _assert_paths_agree(PLAIN_BODIES["quotes doubled inside a quoted cell"].encode(), "aws", catalog)
    # The zone cell `"use1 ""az2"" \\ east"` is the text  use1 "az2" \\ east  (two backslashes), JSON-escaped in the
    # attributes as  "use1 \"az2\" \\\\ east".
    assert quoted.observations["attributes"][0].startswith('{"availability_zone":"use1 \\"az2\\" \\\\\\\\ east",')
    _, padded = _assert_paths_agree(PLAIN_BODIES["cells padded with whitespace"].encode(), "aws", catalog)
    assert padded.observations.select("source_instrument", "region", "usd_price").rows() == [
        ("H100", "us-east-1", Decimal("12.29")), ("H100", "us-east-1", Decimal("3.9328"))]  # 98.32 / 8, 31.4624 / 8
    assert readable_reader_calls == []


def test_plain_csv_skips_blank_lines_and_numbers_rows_as_parse_does(catalog, readable_reader_calls):
    raw = PLAIN_BODIES["blank lines and rows of another field count"].encode()
    readable, columnar = _assert_paths_agree(raw, "aws", catalog)
    # Data rows, blank lines not counted: 1 P5, 2 us-west-2, 3 the 3-field row, 4 the 11-field row, 5 the quote, 6.
    assert sorted((r.row_key, r.detail) for r in columnar.rejections if r.reason == "malformed_row") == [
        ("row 3|malformed", "row has 3 fields, the header has 10"),
        ("row 4|malformed", "row has 11 fields, the header has 10"),
    ]
    assert [r.row_key for r in columnar.rejections if r.reason == "no_accelerator"] == ['"|||*']  # no region, zone
    assert columnar.observations["region"].to_list() == ["us-east-1"] * 2 + ["us-west-2"] * 2 + ["eu-west-1"] * 2
    assert readable_reader_calls == []


NOT_PLAIN_BODIES = {
    "bare carriage returns": (AWS_HEADER + P5).replace("\n", "\r"),
    "a bare carriage return in a row": (AWS_HEADER + P5 + P5.replace("us-east-1", "us-\rwest-2")).replace("\n", "\r\n"),
    "a bare carriage return in the header": (AWS_HEADER.replace("Region", "Reg\rion") + P5).replace("\n", "\r\n"),
    "a quote inside an unquoted cell": AWS_HEADER + P5.replace("p5.48xlarge", 'p5."48"xlarge'),
    "text after a closing quote": AWS_HEADER + P5.replace(",use1-az2", ',"use1"-az2'),
    "a quoted line break": AWS_HEADER + P5.replace("'Manufacturer'", "\n'Manufacturer'"),
    "a blank line before the header": "\n" + AWS_HEADER + P5,
    "text that is not ASCII": AWS_HEADER + P5.replace("us-east-1", "sa-são-paulo-1"),
    "a NUL": AWS_HEADER + P5.replace("use1-az2", "use1\x00az2"),
    "a line longer than the csv field limit": AWS_HEADER + P5.replace("use1-az2", "z" * (csv.field_size_limit() + 1)),
    "no line end at the end": AWS_HEADER + P5.rstrip("\n"),
}
NOT_PLAIN_BODIES = {name: text.encode("utf-8") for name, text in NOT_PLAIN_BODIES.items()}
NOT_PLAIN_BODIES["not UTF-8"] = (AWS_HEADER + P5).encode().replace(b"us-east-1", b"us-\xff-1")


@pytest.mark.parametrize("name", list(NOT_PLAIN_BODIES))
def test_a_body_that_is_not_plain_csv_goes_to_the_readable_reader(name, catalog, readable_reader_calls):
    raw = NOT_PLAIN_BODIES[name]
    try:
        skypilot.parse(raw, ctx("aws"), catalog=catalog)
    except ParseError as readable_error:  # then parse_columns must fail alike
        with pytest.raises(ParseError) as columnar_error:
            skypilot.parse_columns(raw, ctx("aws"), catalog=catalog)
        assert str(columnar_error.value) == str(readable_error)
    else:
        _assert_paths_agree(raw, "aws", catalog)
    assert readable_reader_calls == [len(raw)]


@pytest.mark.parametrize("header", [
    AWS_HEADER.replace(",Price,", ",Price,price,"),  # a repeated column that is read
    AWS_HEADER.replace("AcceleratorCount,", ""),  # a required column missing
])
def test_a_plain_body_with_a_bad_header_fails_as_parse_fails(header, catalog):
    raw = (header + P5).encode()
    with pytest.raises(ParseError) as readable_error:
        skypilot.parse(raw, ctx("aws"), catalog=catalog)
    with pytest.raises(ParseError) as columnar_error:
        skypilot.parse_columns(raw, ctx("aws"), catalog=catalog)
    assert str(columnar_error.value) == str(readable_error.value)
