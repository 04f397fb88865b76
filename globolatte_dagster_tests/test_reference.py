"""Reference snapshots with malformed rows: rejected with file, line and reason, never shifted into place."""

from __future__ import annotations

import re

import dagster as dg
import duckdb
import pytest

from globolatte_dagster.defs.reference.assets import customers, products
from globolatte_dagster.lib.ingest import FileRejected
from globolatte_dagster.lib.reference import read_customers, read_products
from globolatte_dagster_tests.conftest import PRODUCTS_CSV

EMAIL = re.compile(r"[^@\s]+@[^@\s]+")

# Every malformed shape we could think of, each on its own line (the line numbers are asserted below).
MALFORMED_CUSTOMERS = (
    "customer_id,customer_name,email,location,signup_date\n"
    "C001,Ana Lima,ana@example.com,New York,2023-01-05\n"  # 2 good
    "C002,Robinson, Jessica,jr@example.com,Boston,2023-02-01\n"  # 3 unquoted comma: 6 fields
    "C003,Lee, Sam,sam@example.com,Austin\n"  # 4 unquoted comma, no signup: 5 fields, shifted
    "C004,Kim, Al,al@example.com\n"  # 5 unquoted comma, short row: 5 fields, e-mail in location
    'C005,"Diaz, Cy",cy@example.com,Toronto,2023-03-03\n'  # 6 quoted comma: good
    'C006,Bo "Bob" Chen,bob@example.com,Miami,2023-04-04\n'  # 7 quotes inside a field: good
    "\n"  # 8 blank line
    "C007,Eve,eve@example.com,Denver,2023-05-05,extra@example.com\n"  # 9 extra field
    "C008,O'Brien, Pat,,Dallas\n"  # 10 shifted: the surname lands in email
    "C009,Ng,ng@example.com\n"  # 11 short row
    "C010,Zed,,zed@example.com,\n"  # 12 e-mail in location
    "C011,Ann,ann@example.com,Reno,ann@example.com\n"  # 13 e-mail in signup_date
    "C001,Dup,dup@example.com,Reno,2023-01-01\n"  # 14 duplicate id
    ",Nobody,nobody@example.com,Reno,2023-01-01\n"  # 15 missing id
    'C012,"Unclosed, Quote,uq@example.com,Reno,2023-06-06\n'  # 16 a quote that never closes
    "C013,Late,late@example.com,Reno,2023-06-07\n"  # 17 swallowed by the open quote
)


def _load(landing, resources, customers_csv: bytes) -> dg.ExecuteInProcessResult:
    landing.write_bytes("reference/products.csv", PRODUCTS_CSV)
    landing.write_bytes("reference/customers.csv", customers_csv)
    return dg.materialize([products, customers], resources=resources, raise_on_error=False)


def _email_like_outside_raw(warehouse_path: str) -> list[str]:
    found = []
    with duckdb.connect(warehouse_path, read_only=True) as conn:
        columns = conn.execute(
            "SELECT table_schema, table_name, column_name FROM information_schema.columns "
            "WHERE table_schema <> 'raw' AND data_type = 'VARCHAR'"
        ).fetchall()
        for schema, table, column in columns:
            values = conn.execute(f'SELECT "{column}" FROM {schema}.{table}').fetchall()
            found += [f"{schema}.{table}.{column}={v}" for (v,) in values if v and EMAIL.search(str(v))]
    return found


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_no_email_address_leaves_the_raw_layer_whatever_the_rows_look_like(
    landing, resources, warehouse_path, newline
):
    result = _load(landing, resources, MALFORMED_CUSTOMERS.replace("\n", newline).encode())
    assert result.success

    assert _email_like_outside_raw(warehouse_path) == []
    with duckdb.connect(warehouse_path, read_only=True) as conn:
        kept = [r[0] for r in conn.execute("SELECT customer_id FROM core.customers ORDER BY 1").fetchall()]
    assert kept == ["C001", "C005", "C006"]

    check = next(c for c in result.get_asset_check_evaluations() if c.asset_key.path == ["core", "customers"])
    assert check.check_name == "rows_well_formed" and not check.passed
    assert check.severity == dg.AssetCheckSeverity.WARN
    listed = check.metadata["rejected_rows"].value
    for line in (3, 4, 5, 9, 10, 11, 12, 13, 14, 15, 16):
        assert f"| reference/customers.csv | {line} |" in listed, line
    assert "| 8 |" not in listed  # a blank line is not a row
    assert "wrong field count: expected 5 fields, found 6 (an unquoted comma inside a value?)" in listed
    assert "duplicate customer_id: already at line 2" in listed
    assert "quote opened here is not closed" in listed
    # the reasons never quote personal data
    for event in result.all_events:
        text = str(event.event_specific_data)
        assert "example.com" not in text and "Robinson" not in text


def test_shifted_rows_are_rejected_in_pure_code_with_the_line_and_no_value():
    load = read_customers("reference/customers.csv", MALFORMED_CUSTOMERS.encode(), "key")
    reasons = {r.line: r.reason for r in load.rejects}
    assert reasons[4].startswith("e-mail address in location")
    assert reasons[10].startswith("bad email")
    assert reasons[13].startswith("e-mail address in signup_date")
    assert reasons[15] == "missing value: customer_id is empty"
    assert load.rows_read == 14  # lines 2-7 and 9-16 (line 17 is inside the open quote of line 16)
    assert all("example" not in r for r in reasons.values())


def test_products_reject_bad_rows_and_keep_the_rest():
    data = (
        b"product_id,product_name,category,price,serving\n"
        b"P001,Latte,coffee,3.50,hot\n"
        b"P002,Iced Latte, large,coffee,4.00,iced\n"  # unquoted comma
        b"P003,Croissant,pastry,abc,none\n"  # price
        b"P004,Tea,tea,2.00,lukewarm\n"  # serving
        b"P001,Latte again,coffee,3.50,hot\n"  # duplicate
        b"P005,Muffin,pastry,,\n"  # no price, no serving: fine
    )
    load = read_products("reference/products.csv", data)
    assert load.frame["product_id"].tolist() == ["P001", "P005"]
    assert load.frame["serving"].tolist() == ["hot", "none"]
    assert {r.line: r.reason.split(":")[0] for r in load.rejects} == {
        3: "wrong field count",
        4: "bad price",
        5: "bad serving",
        6: "duplicate product_id",
    }


def test_a_snapshot_whose_rows_are_all_rejected_fails_naming_the_file(landing, resources):
    landing.write_bytes("reference/products.csv", PRODUCTS_CSV)
    bad = b"customer_id,customer_name,email,location\nC1,Lee, Sam,s@example.com,X\n"
    with pytest.raises(FileRejected, match="every one of its 1 rows was rejected"):
        read_customers("reference/customers.csv", bad, "key")
    result = _load(landing, resources, bad)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "reference/customers.csv" in failure.step_failure_data.user_failure_data.description
