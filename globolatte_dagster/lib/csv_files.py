"""Landed CSV files as text: what every parser of the landing contract shares.

A file that cannot be read at all raises `FileRejected`, whose message starts with the file's path.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date


class FileRejected(ValueError):
    """A landed file that cannot be parsed at all."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


@dataclass(frozen=True)
class LandedFile:
    path: str  # landing path, e.g. sales/america/2024-09-22/sample.csv
    region: str
    day: date
    data: bytes
    fingerprint: str = ""


def decode_csv(
    path: str, data: bytes, required: Sequence[str]
) -> tuple[list[str], list[list[str]], list[int]]:
    """Parse a UTF-8 CSV with a header. Returns header, rows and each row's 1-based line number.

    Any parser error becomes a `FileRejected` naming the file.
    """
    try:
        return _decode_csv(path, data, required)
    except FileRejected:
        raise
    except Exception as exc:
        raise FileRejected(path, f"could not be parsed ({type(exc).__name__}: {exc})") from exc


def _decode_csv(
    path: str, data: bytes, required: Sequence[str]
) -> tuple[list[str], list[list[str]], list[int]]:
    check_text(path, data)
    text = data.decode("utf-8-sig")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=",", quotechar='"', strict=False)
    try:
        header = [h.strip() for h in next(reader)]
    except (StopIteration, csv.Error) as exc:
        raise FileRejected(path, f"no readable header line ({exc})") from exc
    missing = [c for c in required if c not in header]
    if missing:
        hint = ""
        if len(header) == 1 and any(d in header[0] for d in (";", "\t", "|")):
            hint = " (the header is one field: wrong delimiter? the contract is comma separated)"
        raise FileRejected(path, f"missing required columns {', '.join(missing)}{hint}")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise FileRejected(path, f"duplicate column names {', '.join(dupes)}")
    rows: list[list[str]] = []
    lines: list[int] = []
    previous_end = reader.line_num
    try:
        for row in reader:
            first_line, previous_end = previous_end + 1, reader.line_num  # a quoted newline spans lines
            if not row:
                continue  # blank line
            rows.append(row)
            lines.append(first_line)
    except csv.Error as exc:
        raise FileRejected(path, f"CSV syntax error near line {reader.line_num}: {exc}") from exc
    return header, rows, lines


def check_text(path: str, data: bytes) -> str:
    """Reject what is not UTF-8 CSV text at all; return the header line."""
    if not data.strip():
        raise FileRejected(path, "the file is empty")
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise FileRejected(path, "UTF-16 text, not UTF-8 as the contract requires")
    if b"\x00" in data:
        raise FileRejected(path, "binary content (NUL bytes), not a UTF-8 CSV")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileRejected(path, f"not UTF-8 text (byte {exc.start}: {exc.reason})") from exc
    header = text.lstrip("\ufeff").split("\n", 1)[0].rstrip("\r")
    if "\r" in header:
        raise FileRejected(
            path, "CR-only line endings (classic Mac): save the file with LF or CRLF line endings"
        )
    return header
