"""`tsi fix --observations FILE.csv --definitions FILE.toml`: fixings from a plain CSV, without a warehouse."""
from __future__ import annotations

import csv
import io

import pytest

from pipeline.cli import main
from pipeline.explain import EXPLAIN_FIELDS

PULSE = """\
[defaults]
methodology_version = "1.0"
fixing_time_utc = "18:00"

[[index]]
id = "PULSE-H100-SXM-HYPERSCALER-OD"
name = "H100 SXM hyperscaler on-demand, the median of the four hyperscalers"
instrument_kind = "gpu"
instrument = "H100-SXM"
price_type = "on_demand"
segment = "hyperscaler"
min_providers = 1
outlier_screen = "none"
fallback_window_hours = []
carry_days = 0
"""

OBSERVATIONS = """\
date,provider,instrument,region,price_type,usd_price,segment
2026-04-24,aws,H100-SXM,us-east-1,on_demand,6.88,hyperscaler
2026-04-24,oci,H100-SXM,us-ashburn-1,on_demand,10.00,hyperscaler
2026-04-24,gcp,H100-SXM,us-central1,on_demand,10.9791,hyperscaler
2026-04-24,azure,H100-SXM,eastus,on_demand,12.29,hyperscaler
2026-04-25,aws,H100-SXM,us-east-1,on_demand,6.88,hyperscaler
2026-04-25,gcp,H100-SXM,us-central1,on_demand,10.9791,hyperscaler
2026-04-25,azure,H100-SXM,eastus,on_demand,12.29,hyperscaler
"""


def fix(capsys, tmp_path, observations=OBSERVATIONS, definitions=PULSE, *extra):
    (tmp_path / "obs.csv").write_text(observations)
    (tmp_path / "defs.toml").write_text(definitions)
    code = main(["fix", "--observations", str(tmp_path / "obs.csv"), "--definitions", str(tmp_path / "defs.toml"),
                 *extra])
    out, err = capsys.readouterr()
    return code, out, err


def token_index(index_id: str, price_type: str, *settings: str) -> str:
    """A definitions file with one index of the token instrument some-model."""
    lines = ["[[index]]", f'id = "{index_id}"', 'name = "test"', 'methodology_version = "1"',
             'instrument_kind = "token"', 'instrument = "some-model"', f'price_type = "{price_type}"', *settings]
    return "\n".join(lines) + "\n"


def rows(out: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(out)))


def test_a_published_value_is_recomputed_from_its_inputs(capsys, tmp_path):
    code, out, _ = fix(capsys, tmp_path)
    assert code == 0
    assert out.splitlines()[0] == ",".join(EXPLAIN_FIELDS)
    first, second = rows(out)
    # 2026-04-24: median of four = (10.00 + 10.9791) / 2 = 10.48955 -> 10.4896 (Pulse published 10.4896).
    assert (first["fixing_date"], first["status"], first["value"], first["n_providers"]) == (
        "2026-04-24", "final", "10.4896", "4")
    assert first["constituents"] == "aws=6.88;azure=12.29;gcp=10.9791;oci=10"
    # a 'date' row counts as observed at 00:00 UTC: inside (04-23 18:00, 04-24 18:00]
    assert (first["window_start_utc"], first["window_end_utc"]) == ("2026-04-23T18:00:00Z", "2026-04-24T18:00:00Z")
    # 2026-04-25: oci is missing; median of three = 10.9791.
    assert (second["fixing_date"], second["value"], second["n_providers"]) == ("2026-04-25", "10.9791", "3")


def test_the_output_does_not_depend_on_the_order_of_the_rows(capsys, tmp_path):
    header, *lines = OBSERVATIONS.splitlines()
    _, forward, _ = fix(capsys, tmp_path)
    _, backward, _ = fix(capsys, tmp_path, "\n".join([header, *reversed(lines)]) + "\n")
    assert forward == backward


def test_dates_can_be_chosen(capsys, tmp_path):
    code, out, _ = fix(capsys, tmp_path, OBSERVATIONS, PULSE, "--date", "2026-04-25")
    assert code == 0 and [r["fixing_date"] for r in rows(out)] == ["2026-04-25"]
    code, out, _ = fix(capsys, tmp_path, OBSERVATIONS, PULSE, "--from", "2026-04-23", "--to", "2026-04-24")
    assert [(r["fixing_date"], r["status"]) for r in rows(out)] == [("2026-04-23", "suppressed"), ("2026-04-24", "final")]


def test_the_shipped_definitions_apply_to_a_csv_without_sources(capsys, tmp_path):
    # No source column: the definitions' source lists are set aside; segments come from the catalog
    # (lambda, runpod, fluidstack: specialist). Median of 2.99, 2.49, 2.90 = 2.90.
    observations = ("observed_at,provider,instrument,region,price_type,usd_price\n"
                    "2026-11-20T06:00:00Z,lambda,H100-SXM,us-east-1,on_demand,2.99\n"
                    "2026-11-20T06:00:00Z,runpod,H100-SXM,,on_demand,2.49\n"
                    "2026-11-20T07:30:00+01:00,fluidstack,H100-SXM,,on_demand,2.90\n")
    (tmp_path / "obs.csv").write_text(observations)
    assert main(["fix", "--observations", str(tmp_path / "obs.csv")]) == 0
    by_id = {r["index_id"]: r for r in rows(capsys.readouterr().out)}
    assert by_id["TSI-H100-SXM-OD"]["value"] == "2.9000"
    assert by_id["TSI-LLAMA-3.3-70B-IN"]["status"] == "suppressed"


def test_cells_are_safe_in_a_spreadsheet(capsys, tmp_path):
    observations = OBSERVATIONS.replace("2026-04-24,aws,", "2026-04-24,=HYPERLINK(\"x\"),")
    code, out, _ = fix(capsys, tmp_path, observations)
    assert code == 0
    for row in csv.reader(io.StringIO(out)):
        assert not any(cell.startswith(("=", "+", "-", "@")) for cell in row), row


@pytest.mark.parametrize(
    "observations, message",
    [
        ("date,provider,instrument,price_type\n", "missing column(s) usd_price"),
        ("provider,instrument,price_type,usd_price\n", "missing column(s) date or observed_at"),
        ("date,provider,instrument,price_type,usd_price,colour\n", "unknown column(s) ['colour']"),
        ("date,provider,instrument,price_type,usd_price\n", "no observations"),
        ("date,provider,instrument,price_type,usd_price\n2026-04-24,aws,H100-SXM,on_demand,abc\n",
         "line 2: usd_price 'abc' is not a decimal number"),
        ("date,provider,instrument,price_type,usd_price\n2026-04-24,aws,H100-SXM,on_demand,-1\n",
         "line 2: usd_price '-1' is not positive"),
        ("date,provider,instrument,price_type,usd_price\n2026-04-24,aws,H100-SXM,on_demand,NaN\n",
         "not a finite number"),
        ("date,provider,instrument,price_type,usd_price\n2026-04-24,aws,H100-SXM,hourly,2\n",
         "line 2: price_type 'hourly' is not one of"),
        ("date,provider,instrument,price_type,usd_price\n24/04/2026,aws,H100-SXM,on_demand,2\n",
         "line 2: date '24/04/2026' is not a date"),
        ("date,provider,instrument,price_type,usd_price\n2026-04-24,aws,H100-SXM,on_demand,2\n"
         "2026-04-24,,H100-SXM,on_demand,2\n2026-04-24,gcp,H100-SXM,on_demand\n",
         "line 3: provider is empty (and 1 more bad row(s))"),
    ],
)
def test_bad_rows_get_one_line_naming_the_line(capsys, tmp_path, observations, message):
    code, out, err = fix(capsys, tmp_path, observations)
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_bad_definitions_and_files_get_one_line(capsys, tmp_path):
    code, _, err = fix(capsys, tmp_path, OBSERVATIONS, PULSE.replace('outlier_screen = "none"', 'outlier_screen = "iqr"'))
    assert code == 2 and "outlier_screen must be one of" in err
    code = main(["fix", "--observations", str(tmp_path / "nowhere.csv")])
    assert code == 2 and "no such file" in capsys.readouterr().err


def test_default_dates_follow_the_fixing_time(capsys, tmp_path):
    # Observed at 18:00 on 04-24 with the default fixing time 16:00: the observation belongs to the window
    # (04-24 16:00, 04-25 16:00], so the fixing is dated 04-25.
    observations = ("observed_at,provider,instrument,price_type,usd_price\n"
                    "2026-04-24T18:00:00Z,aws,H100-SXM,on_demand,1\n2026-04-24T18:00:00Z,gcp,H100-SXM,on_demand,2\n")
    code, out, _ = fix(capsys, tmp_path, observations, PULSE.replace('fixing_time_utc = "18:00"\n', ""))
    assert code == 0 and [(r["fixing_date"], r["value"]) for r in rows(out)] == [("2026-04-25", "1.5000")]


def test_token_rows_and_their_price_type_variants_are_read(capsys, tmp_path):
    definitions = token_index("T-LONG", "output_above_200k", "min_providers = 2")
    observations = ("date,provider,instrument,price_type,usd_price\n"
                    "2026-04-24,a,some-model,output_above_200k,22.5\n2026-04-24,b,some-model,output_above_200k,22.4\n"
                    "2026-04-24,b,some-model,output,15\n")
    code, out, _ = fix(capsys, tmp_path, observations, definitions)
    assert code == 0 and [(r["value"], r["unit"]) for r in rows(out)] == [("22.4500", "USD/Mtok")]


def test_the_price_column_may_be_named_by_its_unit(capsys, tmp_path):
    observations = OBSERVATIONS.replace(",usd_price,", ",usd_per_gpu_hour,")
    code, out, _ = fix(capsys, tmp_path, observations)
    assert code == 0 and [r["value"] for r in rows(out)] == ["10.4896", "10.9791"]
    # two price columns, or a unit that contradicts the kind, are refused with one line
    code, _, err = fix(capsys, tmp_path, OBSERVATIONS.replace(",segment\n", ",usd_per_mtok\n", 1))
    assert code != 0 and "one price column" in err
    code, _, err = fix(capsys, tmp_path, "date,provider,instrument,price_type,usd_per_mtok\n2026-04-24,a,H100-SXM,on_demand,2\n")
    assert code != 0 and "does not go with" in err and "Traceback" not in err


def test_more_places_than_the_warehouse_keeps_are_allowed_for_a_reproduction(capsys, tmp_path):
    # Token prices published to 6 places: the middle two of four are 0.123456 and 0.123457, whose mean
    # 0.1234565 is a tie at the 6th place; half-even keeps the even 6 (half-up would give 0.123457).
    definitions = token_index("T-SIX", "input", "decimals = 6", 'outlier_screen = "none"')
    observations = ("date,provider,instrument,price_type,usd_per_mtok\n"
                    "2026-04-24,a,some-model,input,0.1\n2026-04-24,b,some-model,input,0.123456\n"
                    "2026-04-24,c,some-model,input,0.123457\n2026-04-24,d,some-model,input,0.2\n")
    code, out, _ = fix(capsys, tmp_path, observations, definitions)
    assert code == 0 and [r["value"] for r in rows(out)] == ["0.123456"]
