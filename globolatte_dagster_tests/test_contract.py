"""Row and path rules of the landing contract, on small hand-made files."""

from __future__ import annotations

import json
import re
from datetime import date

import pytest

from globolatte_dagster.lib import contract
from globolatte_dagster.lib.ingest import FileRejected, LandedFile, parse_weather, validate_sales

HEADER = (
    "transaction_id,business_unit,product_id,customer_id,quantity,total_price,transaction_date,payment_method"
)
DAY = date(2025, 6, 1)


def _file(body: str, name: str = "a.csv", header: str = HEADER, newline: str = "\n") -> LandedFile:
    text = newline.join([header, *body.strip("\n").split("\n")]) + newline
    return LandedFile(f"sales/canada/2025-06-01/{name}", "canada", DAY, text.encode())


def _rejects(batch) -> dict[int, str]:
    return dict(zip(batch.rejects["source_line"], batch.rejects["reason"], strict=True))


def test_each_rule_rejects_its_row_with_the_line_and_column():
    batch = validate_sales(
        [
            _file(
                "T1,BU_CA,P1,C1,1,3.00,2025-06-01 08:00:00,cash\n"  # valid
                "T2,BU_CA,P9,C1,1,3.00,2025-06-01 08:00:00,cash\n"  # unknown product
                "T3,BU_CA,P1,C1,0,3.00,2025-06-01 08:00:00,cash\n"  # quantity 0
                "T4,BU_CA,P1,C1,1.5,3.00,2025-06-01 08:00:00,cash\n"  # fractional quantity
                "T5,BU_CA,P1,C1,1,-1,2025-06-01 08:00:00,cash\n"  # negative price
                "T6,BU_CA,P1,C1,1,3.00,01/06/2025 08:00,cash\n"  # timestamp format
                "T7,BU_CA,P1,C1,1,3.00,2025-06-02 08:00:00,cash\n"  # other day
                "T8,BU_CA,P1,C1,1,3.00,2025-06-01 08:00:00,bitcoin\n"  # payment method
                "T9,BU_CA,P1,C1,1,3.00\n"  # short row
                "T1,BU_CA,P1,C2,1,3.00,2025-06-01 09:00:00,cash\n"  # duplicate of line 2
                ",BU_CA,P1,C1,1,3.00,2025-06-01 08:00:00,cash\n"  # missing id
            )
        ],
        ["P1"],
    )
    assert batch.valid["transaction_id"].tolist() == ["T1"]
    reasons = _rejects(batch)
    assert sorted(reasons) == list(range(3, 13))
    assert reasons[3].startswith("unknown product: 'P9'")
    assert reasons[4].startswith("bad quantity: '0'")
    assert reasons[5].startswith("bad quantity: '1.5'")
    assert reasons[6].startswith("bad total_price: '-1' is negative")
    assert reasons[7].startswith("bad timestamp")
    assert reasons[8].startswith("timestamp off the partition day")
    assert reasons[9].startswith("bad payment_method: 'bitcoin'")
    assert reasons[10] == "wrong field count: expected 8 fields, found 6"
    assert (
        reasons[11]
        == "duplicate row: (transaction_id, product_id) already loaded from sales/canada/2025-06-01/a.csv:2"
    )
    assert reasons[12] == "missing value: transaction_id is empty"
    cols = dict(zip(batch.rejects["source_line"], batch.rejects["column_name"], strict=True))
    assert cols[3] == "product_id" and cols[10] is None and cols[11] == "transaction_id"


def test_line_numbers_survive_blank_lines_crlf_bom_and_quoted_newlines():
    plain = _file(
        "T1,BU_CA,P1,,1,3,2025-06-01 08:00:00,cash\n\nT2,BU_US,P1,,1,3,2025-06-01 08:00:00,cash",
        newline="\r\n",
    )
    plain = LandedFile(plain.path, plain.region, plain.day, b"\xef\xbb\xbf" + plain.data)
    quoted = _file(
        'T3,BU_CA,P1,,1,3,2025-06-01 08:00:00,cash\n"T\n4",BU_MX,P1,,1,3,2025-06-01 08:00:00,cash',
        name="b.csv",
    )
    batch = validate_sales([plain, quoted], ["P1"])
    assert sorted(batch.valid["transaction_id"]) == ["T1", "T3"]
    assert batch.valid["customer_id"].isna().all()  # guests
    lines = {
        (f.rsplit("/", 1)[1], n)
        for f, n in zip(batch.rejects["source_file"], batch.rejects["source_line"], strict=True)
    }
    assert lines == {("a.csv", 4), ("b.csv", 3)}


@pytest.mark.parametrize("blank", ["", "\n"], ids=["no-blank-line", "blank-line"])
@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_short_and_long_rows_are_rejected_at_their_own_line(blank, newline):
    """The fast parser numbers rows itself when no line is blank, and from the byte layout when one is."""
    ok = "T{},BU_CA,P1,C1,1,3,2025-06-01 08:00:00,cash"
    body = "\n".join(
        [ok.format(1), "T2,BU_CA,P1", ok.format(3) + ",extra", blank + ok.format(4), ok.format(5)]
    )
    batch = validate_sales([_file(body, newline=newline)], ["P1"])
    shift = 1 if blank else 0
    assert _rejects(batch) == {
        3: "wrong field count: expected 8 fields, found 3",
        4: "wrong field count: expected 8 fields, found 9",
    }
    valid = batch.valid.sort_values("source_line")
    assert valid["transaction_id"].tolist() == ["T1", "T4", "T5"]
    assert valid["source_line"].tolist() == [2, 5 + shift, 6 + shift]


def test_duplicates_across_files_of_one_day_keep_the_first():
    a = _file("T1,BU_CA,P1,C1,1,3.00,2025-06-01 08:00:00,cash", name="a.csv")
    b = _file("T1,BU_CA,P1,C1,1,3.00,2025-06-01 08:00:00,cash", name="b.csv")
    batch = validate_sales([b, a], ["P1"])
    assert batch.valid["source_file"].str.endswith("a.csv").tolist() == [True]
    assert batch.rejects["reason"].iloc[0].endswith("a.csv:2")


def test_extra_columns_and_free_order_are_kept():
    header = "payment_method,till," + ",".join(c for c in HEADER.split(",") if c != "payment_method")
    f = _file("cash,7,T1,BU_CA,P1,C1,2,6.00,2025-06-01 08:00:00", header=header)
    batch = validate_sales([f], ["P1"])
    row = batch.valid.iloc[0]
    assert (row["payment_method"], row["quantity"], json.loads(row["extra"])) == ("cash", 2, {"till": "7"})


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"   \n", "empty"),
        (b"a;b;c\n1;2;3\n", "wrong delimiter"),
        (HEADER.replace(",quantity", "").encode() + b"\n", "quantity"),
    ],
)
def test_unusable_files_raise_with_the_file_name(data, problem):
    with pytest.raises(FileRejected, match=problem) as err:
        validate_sales([LandedFile("sales/canada/2025-06-01/x.csv", "canada", DAY, data)], ["P1"])
    assert err.value.path == "sales/canada/2025-06-01/x.csv"


def test_any_parser_exception_names_the_file(monkeypatch):
    """Whatever a parser raises (here Arrow, on a file it cannot read), the error names the file."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    def broken(*args, **kwargs):
        raise pa.ArrowInvalid("CSV parse error: straddling object straddles two block boundaries")

    monkeypatch.setattr(pacsv, "read_csv", broken)
    with pytest.raises(FileRejected, match="straddling") as err:
        validate_sales([_file("T1,BU_CA,P1,C1,1,3,2025-06-01 08:00:00,cash")], ["P1"])
    assert err.value.path == "sales/canada/2025-06-01/a.csv"
    assert str(err.value).startswith("sales/canada/2025-06-01/a.csv: could not be parsed (ArrowInvalid")


WEATHER_HEADER = "date,temp_max_c,temp_min_c,precip_mm\n"


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("2025-06-01,NaN,10,0", "temp_max_c 'NaN' is not a finite number"),
        ("2025-06-01,inf,10,0", "temp_max_c 'inf' is not a finite number"),
        ("2025-06-01,25,-inf,0", "temp_min_c '-inf' is not a finite number"),
        ("2025-06-01,61,10,0", "temp_max_c 61.0 is outside -60..60 °C"),
        ("2025-06-01,20,-61,0", "temp_min_c -61.0 is outside -60..60 °C"),
        ("2025-06-01,20,10,-0.5", "precip_mm -0.5 is negative"),
        ("2025-06-01,10,20,0", "temp_min_c 20.0 is above temp_max_c 10.0"),
        ("2025-06-01,warm,10,0", "temp_max_c 'warm' is not a number"),
        ("2025-06-02,20,10,0", "does not match the file name day"),
    ],
)
def test_weather_values_are_validated_with_a_reason(row, problem):
    lf = LandedFile("weather/canada/2025-06-01.csv", "canada", DAY, (WEATHER_HEADER + row + "\n").encode())
    with pytest.raises(FileRejected, match=re.escape(problem)) as err:
        parse_weather(lf)
    assert err.value.path == "weather/canada/2025-06-01.csv"


def test_valid_weather_and_unmeasured_values_load():
    lf = LandedFile(
        "weather/canada/2025-06-01.csv", "canada", DAY, (WEATHER_HEADER + "2025-06-01,-12.5,-20,\n").encode()
    )
    row = parse_weather(lf).iloc[0]
    assert (row["temp_max_c"], row["temp_min_c"], row["precip_mm"]) == (-12.5, -20.0, None)


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("sales/brazil/2025-06-01/a.csv", "unknown region"),
        ("sales/canada/2025-02-30/a.csv", "not a calendar day"),
        ("sales/canada/20250601/a.csv", "not a YYYY-MM-DD day"),
        ("sales/canada/2025-06-01/a.xlsx", "not a .csv"),
        ("sales/canada/a.csv", "expected sales/"),
        ("exports/x.csv", "not under"),
    ],
)
def test_paths_outside_the_contract_are_named(path, problem):
    with pytest.raises(contract.ContractError, match=problem):
        contract.parse_landing_path(path)


def test_contract_paths_parse():
    p = contract.parse_landing_path("sales/mexico/2025-06-01/store_02.csv")
    assert (p.kind, p.region, p.day, p.partition) == ("sales", "mexico", DAY, ("mexico", "2025-06-01"))
    w = contract.parse_landing_path("weather/canada/2025-06-01.csv")
    assert (w.kind, w.partition) == ("weather", ("canada", "2025-06-01"))
