"""Strict reading of JSON records: type-checked fields, finite numbers and bounded sizes, each failure a
one-line EdgeMnistError naming the file and the field. A record is a dataclass whose fields are declared
once with `json_field`; `Record` derives its strict from_json and its to_json from those declarations."""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
from pathlib import Path
from typing import Any, Callable, ClassVar

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


Parser = Callable[[Any, str, dict], Any]  # (JSON value, where, the fields read so far and the caller's context)


@dataclasses.dataclass(frozen=True)
class Spec:
    """How one record field reads and writes: its JSON kind (a type, or a Record class) and bounds, or a
    custom `parse`; `nullable` (a bool, or a test of the fields read before it) lets null or an absent key
    read as the field's default; `present` requires the key even then; `omit` leaves a value out of the
    JSON; `then` writes derived keys after this one for readers of the file (never read back); a `view`
    reads the whole object and is not written (its JSON belongs to other keys); a `first` field is read
    before the others (a check that guards the rest, such as a file name)."""

    kind: type | None = None
    name: str | None = None
    low: float | None = None
    high: float | None = None
    choices: tuple | None = None
    items: type | None = None
    parse: Parser | None = None
    dump: Callable[[Any], Any] | None = None
    nullable: bool | Callable[[dict], bool] = False
    present: bool = False
    omit: Callable[[Any], bool] | None = None
    then: tuple[tuple[str, Callable[[Any], Any]], ...] = ()
    view: bool = False
    first: bool = False


def json_field(kind: type | None = None, *, default: Any = dataclasses.MISSING,
               default_factory: Any = dataclasses.MISSING, kw_only: Any = dataclasses.MISSING,
               **spec: Any) -> Any:
    """A dataclass field declared once for the record's reader and writer (`spec`: Spec's options); it
    needs a JSON kind or a parser."""
    if kind is None and spec.get("parse") is None:
        raise TypeError("json_field needs a kind or a parse function")
    return dataclasses.field(default=default, default_factory=default_factory, kw_only=kw_only,
                             metadata={"json": Spec(kind, **spec)})


def json_fields(cls: type) -> list[tuple[dataclasses.Field, Spec, str]]:
    """(field, spec, JSON key) of every declared field of a record class, in the order they are written."""
    return [(f, f.metadata["json"], f.metadata["json"].name or f.name)
            for f in dataclasses.fields(cls) if "json" in f.metadata]


def at(where: str, name: str, top: bool) -> str:
    """Where a field is, for errors: "FILE: field" in a whole file, "WHERE.field" in a nested record."""
    return f"{where}: {name}" if top else f"{where}.{name}"


def records(cls: type[Record], value: Any, where: str, **context: Any) -> list:
    """A JSON list of `cls` records, item i named WHERE[i] in errors."""
    return [cls.from_json(item, f"{where}[{i}]", **context) for i, item in enumerate(expect(value, list, where))]


def strings(value: Any, where: str, seen: dict | None = None) -> dict[str, str]:
    """A JSON object read as str -> str (a parser for Spec.parse)."""
    return {str(k): str(v) for k, v in expect(value, dict, where).items()}


def equal_to(expected: Any) -> Parser:
    """A parser that accepts only `expected` (a constant a file name or version must have)."""
    def parse(value: Any, where: str, seen: dict) -> Any:
        if value != expected:
            raise EdgeMnistError(f"{where}: expected {expected!r}")
        return value
    return parse


def _default(f: dataclasses.Field) -> Any:
    """The field's default value (None when it has none)."""
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


def _is_nullable(spec: Spec, seen: dict) -> bool:
    """Whether null reads as the default here (a predicate sees the fields read before)."""
    return spec.nullable(seen) if callable(spec.nullable) else spec.nullable


def _one_of(choices: tuple) -> str:
    """'a, b or c'."""
    names = [str(c) for c in choices]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _read_kind(spec: Spec, value: Any, where: str, context: dict) -> Any:
    """A value of the spec's kind: a nested record, a list of `items`, a bounded number, or a JSON type."""
    kind = spec.kind
    if isinstance(kind, type) and issubclass(kind, Record):
        return kind.from_json(value, where, **context)
    if kind is float:
        number(value, where, spec.low, spec.high)
        return value
    if kind is int and spec.low is not None:
        return count(value, where, int(spec.low))
    value = expect(value, kind, where)
    if spec.items is not None:
        item = Spec(spec.items)
        return [_read_kind(item, v, f"{where}[{i}]", context) for i, v in enumerate(value)]
    return value


def _read_field(f: dataclasses.Field, spec: Spec, key: str, obj: dict, where: str, seen: dict,
                context: dict) -> Any:
    """Field `key` of `obj` read strictly (`where` names it): its parser, else its kind; choices checked."""
    if spec.present and not spec.view and key not in obj:
        raise EdgeMnistError(f"{where}: missing (null when not measured)")
    value = obj if spec.view else obj.get(key)
    if value is None and _is_nullable(spec, seen):
        return _default(f)
    value = spec.parse(value, where, seen) if spec.parse else _read_kind(spec, value, where, context)
    if spec.choices is not None and value not in spec.choices:
        raise EdgeMnistError(f"{where}: {value!r} is not {_one_of(spec.choices)}")
    return value


def plain(value: Any) -> Any:
    """A field's value as JSON: records and tasks by their to_json, arrays as lists, containers item by item."""
    if hasattr(value, "to_json"):
        return value.to_json()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


class Record:
    """A dataclass read and written through its json_field declarations. SCHEMA, when set, is written first
    and checked first; TOP says the record is a whole file (its errors read "FILE: field"); REST names a
    dict field that keeps, as written, the keys no field declares. `validate` checks across fields."""

    SCHEMA: ClassVar[int | None] = None
    TOP: ClassVar[bool] = False
    REST: ClassVar[str | None] = None

    def to_json(self) -> dict:
        """The JSON object: fields in declaration order, each derived key after its field."""
        out: dict = {} if self.SCHEMA is None else {"schema": self.SCHEMA}
        for f, spec, key in json_fields(type(self)):
            value = getattr(self, f.name)
            if not spec.view and not (spec.omit and spec.omit(value)):
                out[key] = spec.dump(value) if spec.dump else plain(value)
            out.update((name, plain(get(self))) for name, get in spec.then)
        return {**out, **(getattr(self, self.REST) if self.REST else {})}

    @classmethod
    def from_json(cls, raw: Any, where: str, **context: Any) -> Record:
        """Strict parse of `raw` (`where` names it in errors; `context`: what the caller knows that the
        fields need, such as the number of classes)."""
        obj = expect(raw, dict, where)
        cls._check_schema(obj, where)
        seen, values = dict(context), {}
        for f, spec, key in sorted(json_fields(cls), key=lambda declared: not declared[1].first):
            named = where if spec.view else at(where, key, cls.TOP)
            values[f.name] = seen[f.name] = _read_field(f, spec, key, obj, named, seen, context)
        if cls.REST:
            values[cls.REST] = {k: v for k, v in obj.items() if k not in cls._known()}
        record = cls(**values)
        record.validate(where)
        return record

    @classmethod
    def _check_schema(cls, obj: dict, where: str) -> None:
        """Refuse a record of another schema version (it would be misread)."""
        if cls.SCHEMA is not None and obj.get("schema") != cls.SCHEMA:
            raise EdgeMnistError(f"{where}: schema {obj.get('schema')!r} is not {cls.SCHEMA}; "
                                 "re-run the command that wrote it")

    @classmethod
    def _known(cls) -> set[str]:
        """Every key the record reads or writes itself."""
        return {"schema"} | {key for _, spec, key in json_fields(cls) if not spec.view} | {
            name for _, spec, _ in json_fields(cls) for name, _ in spec.then}

    def validate(self, where: str) -> None:
        """Checks across fields after a read (none by default)."""
