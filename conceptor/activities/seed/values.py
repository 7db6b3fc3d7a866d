"""Values of a seed file parsed as the live column's type, for writing and for comparing."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

_TEXT = {"text", "varchar", "bpchar", "citext", "name"}
_INTS = {"int2", "int4", "int8"}
_FLOATS = {"float4", "float8"}
_TRUE = {"true", "t", "yes", "y", "on", "1"}
_FALSE = {"false", "f", "no", "n", "off", "0"}
_OTHERS = {"numeric", "bool", "uuid", "date", "timestamp", "timestamptz", "json", "jsonb"}
_SUPPORTED = frozenset(_TEXT | _INTS | _FLOATS | _OTHERS)
# One-dimensional arrays of these (pg_type names an array type `_<element>`): `sizes int[]`.
_ARRAY_ELEMENTS = frozenset(_TEXT | _INTS | _FLOATS | {"numeric", "bool", "uuid", "date"})


@dataclass(frozen=True)
class Column:
    """A live column: its type's name (pg_type.typname), SQL spelling, and enum labels."""

    name: str
    type: str  # e.g. int4, text, jsonb, timestamptz, or an enum's name
    sql_type: str  # format_type(): what a parameter is cast to
    labels: tuple[str, ...] = ()  # an enum's values; () for other types
    # format_type() without the modifier (varchar, not varchar(20)): how a value is staged
    # for comparing, so a value too long is the write's error, not the plan's.
    base_type: str = ""

    @property
    def is_json(self) -> bool:
        return self.type in ("json", "jsonb")

    @property
    def element(self) -> Column | None:
        """An array column's element, as a column of its own; None for other types."""
        if not self.type.startswith("_") or self.type[1:] not in _ARRAY_ELEMENTS:
            return None
        return Column(self.name, self.type[1:], self.sql_type.removesuffix("[]"))


def supported(column: Column) -> bool:
    """Whether seed files can give this column's values."""
    return column.type in _SUPPORTED or bool(column.labels) or column.element is not None


def plain_type(column: Column) -> type | None:
    """The Python type a value of this column already has when it needs no parsing (a text
    column's str): a hundred thousand rows are mostly such values."""
    if column.labels:
        return None
    if column.type in _TEXT:
        return str
    if column.type in _INTS:
        return int
    if column.type == "bool":
        return bool
    return None


def converter(column: Column, *, from_text: bool) -> Callable[[Any], Any]:
    """`parse` for one column, the common case (see plain_type) taken first."""
    fast = plain_type(column)

    def convert(value: Any) -> Any:
        if value is None or type(value) is fast:
            return value
        return parse(value, column, from_text=from_text)

    return convert


def parse(value: Any, column: Column, *, from_text: bool) -> Any:
    """`value` as the Python value the column holds; ValueError saying why it does not parse.
    `from_text`: the file gives strings only (CSV), so a JSON column's value is JSON text."""
    if value is None:
        return None
    t = column.type
    if column.labels:
        if str(value) not in column.labels:
            raise ValueError(f"not one of {', '.join(column.labels)}")
        return str(value)
    if t in _TEXT:
        if isinstance(value, dict | list):
            raise ValueError("a structure, not text")
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)
    if t in _INTS:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError("not an integer")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ValueError("not an integer") from None
    if t == "numeric":
        try:
            return Decimal(str(value))
        except InvalidOperation:
            raise ValueError("not a number") from None
    if t in _FLOATS:
        if isinstance(value, bool):
            raise ValueError("not a number")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError("not a number") from None
    if t == "bool":
        return _bool(value)
    if t == "uuid":
        try:
            return uuid.UUID(str(value))
        except ValueError:
            raise ValueError("not a UUID") from None
    if t == "date":
        return _date(value)
    if t in ("timestamp", "timestamptz"):
        return _timestamp(value, aware=t == "timestamptz")
    element = column.element
    if element is not None:
        return _array(value, element, from_text=from_text)
    if column.is_json:
        if from_text and isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise ValueError("not JSON") from None
        return value
    raise ValueError(f"type {column.sql_type} is not supported in seed files")


def _array(value: Any, element: Column, *, from_text: bool) -> list[Any]:
    """A list of the element type; CSV gives it as JSON text (`[128, 512]`)."""
    if from_text and isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError("not a JSON list") from None
    if not isinstance(value, list):
        raise ValueError("not a list")
    out = []
    for i, item in enumerate(value):
        if isinstance(item, dict | list):
            raise ValueError(f"item {i}: a structure, not a {element.sql_type}")
        try:
            out.append(parse(item, element, from_text=False))
        except ValueError as exc:
            raise ValueError(f"item {i}: {exc}") from None
    return out


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("not a boolean (true/false)")


def _date(value: Any) -> date:
    if isinstance(value, datetime):
        raise ValueError("a timestamp, not a date")
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ValueError("not a date (YYYY-MM-DD)") from None


def _timestamp(value: Any, *, aware: bool) -> datetime:
    if isinstance(value, datetime):
        found = value
    elif isinstance(value, date):
        found = datetime(value.year, value.month, value.day)
    else:
        try:
            found = datetime.fromisoformat(str(value))
        except ValueError:
            raise ValueError("not a timestamp (ISO 8601)") from None
    if aware and found.tzinfo is None:
        return found.replace(tzinfo=UTC)  # a naive time is read as UTC, whatever the server's zone
    if not aware and found.tzinfo is not None:
        return found.astimezone(UTC).replace(tzinfo=None)
    return found


def to_parameter(value: Any, column: Column) -> Any:
    """What asyncpg is given for the value (JSON travels as text)."""
    if column.is_json and value is not None:
        return json.dumps(value)
    return value


def from_live(value: Any, column: Column) -> Any:
    """A value read back, comparable with a parsed one (asyncpg gives JSON as text)."""
    if column.is_json and isinstance(value, str):
        return json.loads(value)
    return value
