"""Strict reading of JSON records: type-checked fields, finite numbers and bounded sizes, each failure a
one-line EdgeMnistError naming the file and the field."""
from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

import numpy as np

from edge_mnist.core.errors import EdgeMnistError

MAX_JSON_BYTES = 64 << 20


def expect(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    """`value` if it has the JSON type `kind`, else a one-line error naming `where` (file: field)."""
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise EdgeMnistError(f"{where}: expected a number, got a boolean")
    if kind is float:
        kind = (int, float)
    if not isinstance(value, kind):
        wanted = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        got = "missing" if value is None else type(value).__name__
        raise EdgeMnistError(f"{where}: expected {wanted}, got {got}")
    return value


def number(value: Any, where: str, low: float | None = None, high: float | None = None) -> float:
    """A finite number within [low, high]."""
    try:
        number = float(expect(value, float, where))
    except OverflowError as exc:
        raise EdgeMnistError(f"{where}: number too large") from exc
    if not np.isfinite(number) or (low is not None and number < low) or (high is not None and number > high):
        raise EdgeMnistError(f"{where}: {number} is out of range [{low}, {high}]")
    return number


def count(value: Any, where: str, low: int) -> int:
    """A whole number of at least `low`."""
    number = expect(value, int, where)
    if number < low:
        raise EdgeMnistError(f"{where}: {number} is below {low}")
    return number


def read_record(path: Path, what: str) -> dict:
    """Load a JSON object from a record file or raise a one-line error naming it."""
    path = Path(path)
    if not path.is_file():
        raise EdgeMnistError(f"{path}: {what} not found")
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise EdgeMnistError(f"{path}: {what} is larger than {MAX_JSON_BYTES >> 20} MB")
        obj = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as exc:  # ValueError covers JSONDecodeError, 4300-digit ints
        raise EdgeMnistError(f"{path}: {what} is not valid JSON ({str(exc)[:120]})") from exc
    return expect(obj, dict, f"{path}")


def now() -> str:
    """UTC timestamp for records."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
