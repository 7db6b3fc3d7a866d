"""Read a seed file (YAML, JSON or CSV) into rows, each with the number a person finds it by."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Generic, NamedTuple, TypeVar

import yaml

from conceptor.platform.collector import collector_paused
from conceptor.platform.environment import YAML_LOADER

# Files parsed lately, by suffix and content hash: the same bytes give the same rows, so a
# re-run over unchanged files does not parse them again (the live rows are still read).
_KEEP = 16
K = TypeVar("K")
V = TypeVar("V")


class Kept(Generic[K, V]):
    """The last few values made, by key; shared by the worker's threads (each step's work
    runs on a loop of its own)."""

    def __init__(self, size: int = _KEEP) -> None:
        self._items: OrderedDict[K, V] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_PARSED: Kept[tuple[str, str], list[SeedRow]] = Kept()


class SeedRefused(ValueError):
    """A seed file that cannot be applied as it is; the message names file, row and column."""


class SeedRow(NamedTuple):
    """One row of a seed file: its values by column, and its number (1 = the first row).
    A named tuple: a hundred thousand of them are made in a tenth of a dataclass's time."""

    number: int
    values: dict[str, Any]


def forget_files() -> None:
    """Drop the files parsed lately."""
    _PARSED.clear()


def read_rows(path: Path, shown: str | None = None) -> list[SeedRow]:
    """The rows of `path`; `shown` is the name used in messages (default: the path).

    CSV values are strings (an empty field is NULL); YAML and JSON give a list of mappings.
    """
    return read_file(path, shown)[0]


def read_file(path: Path, shown: str | None = None) -> tuple[list[SeedRow], str]:
    """The rows of `path` and the SHA-256 of its bytes (the rows are shared: not to be
    changed)."""
    name = shown or str(path)
    try:
        raw = path.read_bytes()
        sha = hashlib.sha256(raw).hexdigest()
        suffix = path.suffix.lower()
        found = _PARSED.get((suffix, sha))
        if found is not None:
            return found, sha
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SeedRefused(f"{name}: cannot be read: {exc}") from None
    with collector_paused():
        rows = _parse(name, suffix, text)
    _PARSED.put((suffix, sha), rows)
    return rows, sha


def _parse(name: str, suffix: str, text: str) -> list[SeedRow]:
    if suffix == ".csv":
        return _csv_rows(name, text)
    try:
        if suffix == ".json":
            data = json.loads(text)
        else:
            data = _json_lines(text)
            if data is None:
                data = yaml.load(text, Loader=YAML_LOADER)
    except (ValueError, yaml.YAMLError) as exc:
        raise SeedRefused(f"{name}: not valid {suffix.lstrip('.').upper()}: {exc}") from None
    if data is None:
        return []
    if not isinstance(data, list):
        raise SeedRefused(f"{name}: expected a list of rows (mappings of column to value)")
    # JSON's keys are strings; YAML's may be anything (`1: x`, `true: y`).
    textual = suffix == ".json"
    for i, item in enumerate(data, start=1):
        if type(item) is not dict or not (textual or all(type(k) is str for k in item)):
            raise SeedRefused(f"{name}: row {i}: expected a mapping of column to value")
    # The parser's own mappings, fresh from it: kept, not copied.
    return [SeedRow(i, item) for i, item in enumerate(data, start=1)]


class _NotAlike(ValueError):
    """A value JSON and YAML 1.1 read differently."""


def _no_exponent(text: str) -> float:
    if "e" in text or "E" in text:
        raise _NotAlike(text)  # YAML 1.1 reads 1e5 (and 1.5e3) as a string
    return float(text)


def _not_alike(text: str) -> Any:
    raise _NotAlike(text)  # NaN, Infinity: not JSON that YAML reads as such


def _json_lines(text: str) -> list[Any] | None:
    """A YAML list written one JSON mapping a line (`- {"id": 1, "name": "a"}`, what tools
    and the tests generate), read by the JSON parser: ten times libyaml's speed, the same
    values (those YAML 1.1 reads otherwise, a number with an exponent, are left to YAML).
    None when the text is not such a list."""
    lines = text.splitlines()
    if not lines or not all(ln.startswith("- {") and ln.rstrip().endswith("}") for ln in lines):
        return None
    try:
        data = json.loads(
            "[" + ",".join(ln[2:] for ln in lines) + "]",
            parse_float=_no_exponent,
            parse_constant=_not_alike,
        )
    except ValueError:
        return None
    return data if isinstance(data, list) else None


def _csv_rows(name: str, text: str) -> list[SeedRow]:
    # newline="" semantics: quoted fields keep their line breaks.
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        records = list(reader)
    except csv.Error as exc:
        raise SeedRefused(f"{name}: not valid CSV at line {reader.line_num}: {exc}") from None
    if not records:
        return []
    header = [h.strip() for h in records[0]]
    if header and header[0].startswith("\ufeff"):
        header[0] = header[0][1:]  # a byte-order mark some editors write
    twice = sorted({h for h in header if header.count(h) > 1})
    if twice:
        raise SeedRefused(f"{name}: header: column(s) {', '.join(twice)} given twice")
    rows = []
    for i, record in enumerate(records[1:], start=1):
        if not record:
            continue  # a blank line
        if len(record) != len(header):
            raise SeedRefused(
                f"{name}: row {i}: {len(record)} field(s), the header has {len(header)}"
            )
        values = zip(header, record, strict=True)
        rows.append(SeedRow(i, {h: (v if v != "" else None) for h, v in values}))
    return rows
