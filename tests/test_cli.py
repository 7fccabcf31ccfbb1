"""The `tsi` command as a maintainer uses it, and the README that documents it."""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest

from pipeline.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_sources_lists_every_registered_source(capsys):
    from pipeline.sources import SOURCES

    code, out, _ = run(capsys, "sources")
    assert code == 0
    listed = [line.split("\t") for line in out.splitlines()]
    assert [row[0] for row in listed] == sorted(SOURCES)
    assert {"skypilot", "openrouter", "openrouter_endpoints"} <= set(SOURCES)
    assert all(row[1] in {"gpu", "token", "fx"} and row[2] for row in listed)


def test_parse_prints_observations_and_rejections_as_csv(capsys):
    code, out, err = run(capsys, "parse", "skypilot", str(FIXTURES / "skypilot" / "lambda_vms.csv"))
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    h100 = [r for r in rows if r["row_key"] == "gpu_8x_h100_sxm5|us-east-1||on_demand"]
    assert [(r["provider"], r["instrument"], r["usd_price"]) for r in h100] == [("lambda", "H100-SXM", "2.9900000000")]
    cpu = [r for r in rows if r["record"] == "rejection" and r["row_key"].startswith("cpu_4x_general")]
    assert cpu and cpu[0]["reason"] == "no_accelerator"
    n_obs = sum(r["record"] == "observation" for r in rows)
    assert err.startswith(f"{n_obs} observations, ")


def test_parse_output_is_safe_to_open_in_a_spreadsheet(capsys, tmp_path):
    hostile = tmp_path / "evil_vms.csv"
    hostile.write_text(
        "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,Region,GpuInfo,SpotPrice\n"
        "=HYPERLINK(\"http://x\"),=cmd|' /C calc'!A0,1,4,16,2.00,@SUM(1),,\n"
    )
    code, out, _ = run(capsys, "parse", "skypilot", str(hostile))
    assert code == 0
    for row in csv.reader(io.StringIO(out)):
        assert not any(cell.startswith(("=", "+", "-", "@")) for cell in row), row
    assert "unknown_instrument" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (("parse", "nowhere", "x.csv"), "unknown source 'nowhere'"),
        (("parse", "skypilot", "/no/such/lambda_vms.csv"), "No such file"),
        (("parse", "skypilot", str(FIXTURES / "openrouter" / "models_bare.json")), "cannot tell the cloud"),
        (("parse", "skypilot", str(FIXTURES / "openrouter" / "models_bare.json"), "--provider", "x"),
         "lacks required column"),
        (("parse", "openrouter", str(FIXTURES / "openrouter" / "not_json.html")), "not_json.html"),
        (("--warehouse", "/no/such/warehouse", "fixings"), "no warehouse"),
    ],
)
def test_bad_input_gets_one_line_and_status_2(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def readme() -> str:
    return (ROOT / "README.md").read_text()


def test_every_command_is_documented_in_the_readme():
    subcommands = build_parser()._subparsers._group_actions[0].choices
    for name in subcommands:
        assert f"`tsi {name}" in readme(), f"tsi {name} is not documented in README.md"


def test_ci_runs_exactly_the_readme_quickstart():
    blocks = re.findall(r"## Quickstart.*?```sh\n(.*?)\n```.*?```sh\n(.*?)\n```", readme(), re.S)
    assert blocks, "README quickstart must hold two sh blocks"
    install_and_demo, tests = blocks[0]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert install_and_demo in ci
    assert tests in ci
