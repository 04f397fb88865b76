"""Writing what the simulator makes: landing files (CSV text) and the ground-truth folder."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from globolatte_dagster.lib.contract import REGIONS

from .sales import BROKEN_COLUMNS

MALFORMED_COLUMNS: tuple[str, ...] = ("file", "line", "customer_id", "fields", "expected_fields", "reason")


def csv_text(frame: pd.DataFrame) -> str:
    """CSV text of a frame of plain strings (no commas or quotes in values), built column-wise."""
    header = ",".join(frame.columns) + "\n"
    if not len(frame):
        return header
    columns = [frame[c].to_numpy(dtype=object) for c in frame.columns]
    lines = columns[0]
    for col in columns[1:]:
        lines = lines + "," + col
    return header + "\n".join(lines.tolist()) + "\n"


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="\n")


def write_if_changed(path: Path, text: str) -> bool:
    """Write `text` unless the file already holds exactly it (a snapshot re-sent unchanged is not new)."""
    data = text.encode("utf-8")
    if path.exists() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return True


def frame_csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False, lineterminator="\n")


def business_units_frame() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "business_unit": r.business_unit,
                "region": r.key,
                "country": r.country,
                "currency": r.currency,
                "timezone": r.timezone,
                "city": r.city,
            }
            for r in REGIONS.values()
        ]
    )


def customers_with_raw_rows(customers: pd.DataFrame, path: str) -> tuple[str, pd.DataFrame]:
    """customers.csv text where rows flagged `unquoted` are written without quoting (as some exports do),
    and the list of those rows, whose field count differs from the header's."""
    columns = [c for c in customers.columns if c != "unquoted"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    malformed = []
    for line, row in enumerate(customers.itertuples(index=False), start=2):
        values = [str(getattr(row, c)) for c in columns]
        if row.unquoted:
            text = ",".join(values)
            fields = len(text.split(","))
            buffer.write(text + "\n")
            if fields != len(columns):
                reason = f"unquoted comma in customer_name: {fields} fields, header has {len(columns)}"
                malformed.append((path, line, row.customer_id, fields, len(columns), reason))
        else:
            writer.writerow(values)
    return buffer.getvalue(), pd.DataFrame(malformed, columns=list(MALFORMED_COLUMNS))


def write_parameters(truth: Path, params: dict) -> None:
    write_text(
        truth / "parameters.json", json.dumps(params, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    )


def read_or_empty(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    if path.exists():
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    return pd.DataFrame(columns=list(columns))


def write_broken(path: Path, frames: Iterable[pd.DataFrame]) -> None:
    frames = [f for f in frames if len(f)]
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(BROKEN_COLUMNS))
    out = out.astype({"line": int}) if len(out) else out
    out = out.sort_values(["day", "region", "file", "line"], kind="stable")[list(BROKEN_COLUMNS)]
    out.to_csv(path, index=False, lineterminator="\n")


def write_missing(path: Path, frames: Iterable[pd.DataFrame]) -> None:
    frames = [f for f in frames if len(f)]
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["region", "day"])
    out.sort_values(["day", "region"], kind="stable").to_csv(path, index=False, lineterminator="\n")


def check_truth_outside(landing: Path, truth: Path) -> None:
    lr, tr = landing.resolve(), truth.resolve()
    if tr == lr or lr in tr.parents:
        raise ValueError(f"the ground truth folder {truth} must be outside the landing folder {landing}")
