"""jsonio.py: strict fields (expect, number, count, read_record) and the Record reader/writer driven by
json_field declarations: each bad input a one-line error naming the field, and a record written as read."""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field

import numpy as np
import pytest

from edge_mnist.core import jsonio
from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.core.jsonio import Record, count, equal_to, expect, json_field, number, read_record, records, strings

pytestmark = pytest.mark.device


@dataclass
class Point(Record):
    """A nested record: a bounded number and a choice written under another name."""

    x: float = json_field(float, low=0, high=10)
    label: str = json_field(str, name="name", choices=("a", "b"))


def _single(seen: dict) -> bool:
    """`scale` may be null for a shape of size 1."""
    return seen["size"] == 1


@dataclass(kw_only=True)
class Shape(Record):
    """A whole-file record using every option of json_field."""

    SCHEMA = 3
    TOP = True
    REST = "extra"

    size: int = json_field(int, low=1, then=(("area", lambda s: s.size ** 2),))
    corner: Point = json_field(Point)
    points: list[Point] = json_field(list, items=Point, default_factory=list)
    tags: list[str] = json_field(list, items=str, default_factory=list)
    weights: np.ndarray = json_field(parse=lambda v, w, seen: np.asarray(expect(v, list, w)),
                                   dump=lambda a: a.tolist())
    note: str | None = json_field(str, nullable=True, omit=lambda v: v is None, default=None)
    scale: float | None = json_field(float, nullable=_single, present=True, default=None)
    kind: str = json_field(parse=equal_to("shape"), first=True, default="shape")
    extra: dict = field(default_factory=dict)


GOOD = {"schema": 3, "size": 2, "area": 4, "corner": {"x": 1, "name": "a"},
        "points": [{"x": 0.5, "name": "b"}, {"x": 10, "name": "a"}], "tags": ["t"], "weights": [1, 2],
        "note": "hi", "scale": 0.25, "kind": "shape", "colour": "red"}


def read(edit=None) -> Shape:
    """GOOD, changed by `edit`, read as a Shape of file s.json."""
    raw = copy.deepcopy(GOOD)
    if edit:
        edit(raw)
    return Shape.from_json(raw, "s.json")


def test_a_record_reads_typed_and_writes_back_exactly_as_read():
    shape = read()
    assert shape.corner == Point(1, "a") and shape.points[1] == Point(10, "a") and shape.extra == {"colour": "red"}
    assert shape.weights.tolist() == [1, 2] and shape.scale == 0.25
    written = shape.to_json()
    assert written == GOOD and list(written) == list(GOOD)
    assert json.dumps(written) == json.dumps(GOOD)  # numbers keep their JSON form (1 stays 1, not 1.0)


def test_null_reads_as_the_default_where_allowed_and_omit_leaves_the_key_out():
    shape = read(lambda r: r.update(size=1, area=1, scale=None, note=None))
    assert shape.scale is None and shape.note is None
    assert "note" not in shape.to_json() and shape.to_json()["scale"] is None
    for absent in (lambda r: r.pop("points"), lambda r: r.update(points=None)):  # a default is not "nullable"
        with pytest.raises(EdgeMnistError, match="s.json: points: expected list, got missing"):
            read(absent)


@pytest.mark.parametrize("edit, message", [
    (lambda r: r.update(schema=2), "s.json: schema 2 is not 3; re-run the command that wrote it"),
    (lambda r: r.pop("schema"), "s.json: schema None is not 3"),
    (lambda r: r.update(kind="other", size=0), "s.json: kind: expected 'shape'"),  # read first
    (lambda r: r.update(size=0), "s.json: size: 0 is below 1"),
    (lambda r: r.update(size=True), "s.json: size: expected a number, got a boolean"),
    (lambda r: r.update(size=2.5), "s.json: size: expected int, got float"),
    (lambda r: r.pop("corner"), "s.json: corner: expected dict, got missing"),
    (lambda r: r["corner"].update(x=11), r"s.json: corner.x: 11.0 is out of range \[0, 10\]"),
    (lambda r: r["corner"].update(x=float("inf")), "s.json: corner.x: inf is out of range"),
    (lambda r: r["corner"].update(x=10 ** 400), "s.json: corner.x: number too large"),
    (lambda r: r["corner"].update(name="c"), "s.json: corner.name: 'c' is not a or b"),
    (lambda r: r["points"][1].update(x="far"), r"s.json: points\[1\].x: expected int or float, got str"),
    (lambda r: r.update(points={}), "s.json: points: expected list, got dict"),
    (lambda r: r.update(tags=[1]), r"s.json: tags\[0\]: expected str, got int"),
    (lambda r: r.update(weights="w"), "s.json: weights: expected list, got str"),
    (lambda r: r.update(note=5), "s.json: note: expected str, got int"),
    (lambda r: r.pop("scale"), "s.json: scale: missing \\(null when not measured\\)"),
    (lambda r: r.update(scale=None), "s.json: scale: expected int or float, got missing"),
])
def test_each_bad_field_is_a_one_line_error_naming_file_and_field(edit, message):
    with pytest.raises(EdgeMnistError, match=message) as caught:
        read(edit)
    assert "\n" not in str(caught.value)


def test_a_nested_record_alone_names_its_fields_after_its_place():
    with pytest.raises(EdgeMnistError, match=r"^f: rows\[2\]: expected dict, got list$"):
        records(Point, [{"x": 1, "name": "a"}, {"x": 2, "name": "b"}, []], "f: rows")
    assert records(Point, [{"x": 1, "name": "a"}], "f: rows") == [Point(1, "a")]


def test_validate_runs_after_the_fields_are_read():
    @dataclass
    class Span(Record):
        low: int = json_field(int)
        high: int = json_field(int)

        def validate(self, where: str) -> None:
            if self.high < self.low:
                raise EdgeMnistError(f"{where}: high is below low")

    assert Span.from_json({"low": 1, "high": 2}, "span").to_json() == {"low": 1, "high": 2}
    with pytest.raises(EdgeMnistError, match="^span: high is below low$"):
        Span.from_json({"low": 3, "high": 2}, "span")


def test_a_field_needs_a_kind_or_a_parser():
    with pytest.raises(TypeError, match="needs a kind or a parse function"):
        json_field(name="x")


def test_strings_and_equal_to():
    assert strings({"a": 1, 2: "b"}, "w") == {"a": "1", "2": "b"}
    with pytest.raises(EdgeMnistError, match="w: expected dict, got list"):
        strings([], "w")
    assert equal_to("f.h5")("f.h5", "w", {}) == "f.h5"
    with pytest.raises(EdgeMnistError, match="w: expected 'f.h5'"):
        equal_to("f.h5")("../f.h5", "w", {})


def test_expect_number_and_count():
    assert expect("x", str, "w") == "x" and number(3, "w", 0, 5) == 3.0 and count(4, "w", 1) == 4
    with pytest.raises(EdgeMnistError, match="w: expected str or int, got missing"):
        expect(None, (str, int), "w")
    with pytest.raises(EdgeMnistError, match="w: expected a number, got a boolean"):
        number(False, "w")
    with pytest.raises(EdgeMnistError, match=r"w: -1.0 is out of range \[0, None\]"):
        number(-1, "w", low=0)
    with pytest.raises(EdgeMnistError, match="w: nan is out of range"):
        number(float("nan"), "w")
    with pytest.raises(EdgeMnistError, match="w: 0 is below 1"):
        count(0, "w", 1)


def test_read_record(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    with pytest.raises(EdgeMnistError, match="r.json: the record not found"):
        read_record(path, "the record")
    path.write_text("{")
    with pytest.raises(EdgeMnistError, match="r.json: the record is not valid JSON"):
        read_record(path, "the record")
    path.write_text("[1]")
    with pytest.raises(EdgeMnistError, match="r.json: expected dict, got list"):
        read_record(path, "the record")
    path.write_text('{"a": 1}')
    assert read_record(path, "the record") == {"a": 1}
    monkeypatch.setattr(jsonio, "MAX_JSON_BYTES", 4)
    with pytest.raises(EdgeMnistError, match="r.json: the record is larger than 0 MB"):
        read_record(path, "the record")
