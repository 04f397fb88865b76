"""Request-level bounds of the scoring contract, checked by `score.py` before any model sees a request.

- body: at most `MAX_BODY_BYTES` (2 MiB: the largest valid batch, 1,000 requests, is ~0.2 MB) -> 413;
- JSON nesting: at most `MAX_DEPTH` levels of arrays and objects, counted before parsing, so a deeply
  nested body never reaches the parser's recursion (`{"requests": [{...}]}` is 3 levels) -> 400;
- `customer_id`: 1 to `MAX_CUSTOMER_ID` characters, printable (no NUL, no control characters) -> 400;
- `date`: within `DATE_WINDOW_DAYS` (two years) either side of the model's last landed day -> 400.

Pure functions returning a message (or None); only the standard library.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

MAX_BODY_BYTES = 2 * 1024 * 1024
MAX_DEPTH = 8
MAX_CUSTOMER_ID = 64
DATE_WINDOW_DAYS = 731  # two years either side of the model's last landed day

_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"')  # a JSON string (possessive: no backtracking)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def body_problem(body: bytes) -> tuple[int, str] | None:
    """(status, message) if the raw body is over the size or nesting bound, else None."""
    if len(body) > MAX_BODY_BYTES:
        return 413, (
            f"request body of {len(body):,} bytes is over the limit of {MAX_BODY_BYTES:,} "
            "(a batch holds at most 1,000 requests)"
        )
    if body.count(b"[") + body.count(b"{") <= MAX_DEPTH:
        return None  # too few brackets to nest deeper
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    depth = 0
    for b in brackets:
        if b in b"[{":
            depth += 1
            if depth > MAX_DEPTH:
                return 400, f"JSON nested deeper than {MAX_DEPTH} levels: a request is a flat object"
        else:
            depth -= 1
    return None


def customer_id_problem(value: Any) -> str | None:
    """A message if `customer_id` is a string out of bounds (other types are the model's to reject)."""
    if not isinstance(value, str):
        return None
    if not 1 <= len(value) <= MAX_CUSTOMER_ID:
        return f"customer_id must have 1 to {MAX_CUSTOMER_ID} characters, not {len(value):,}"
    if not value.isprintable():
        return "customer_id must be printable text (no NUL, control or line-break characters)"
    return None


def date_problem(value: Any, as_of: date | None) -> str | None:
    """A message if `date` parses but lies outside the window around `as_of` (the model's last day)."""
    if as_of is None or not isinstance(value, str):
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return None  # not a date at all: the model's own validation says so
    first, last = as_of - timedelta(days=DATE_WINDOW_DAYS), as_of + timedelta(days=DATE_WINDOW_DAYS)
    if first <= day <= last:
        return None
    return (
        f"date {day.isoformat()} is outside the served window {first.isoformat()}..{last.isoformat()} "
        f"(two years either side of the model's last landed day, {as_of.isoformat()})"
    )


def request_problem(request: Any, as_of: date | None) -> str | None:
    """The first bound a request object breaks, or None."""
    if not isinstance(request, dict):
        return None
    return customer_id_problem(request.get("customer_id")) or date_problem(request.get("date"), as_of)
