"""Replay traces: when to send which DAG request, with which input and policy.

A trace is a file of entries, one per DAG request, read before the replay starts
so that a bad line stops it at once rather than half-way through a run.

JSON lines (``.jsonl``, ``.ndjson``, ``.json``), one object per line::

    {"offset_s": 0.0, "dag": "video", "input": {"url": "..."}, "policy": "thesis"}
    {"offset_s": 1.5, "dag": "video", "input": "inputs/clip2.json", "harvest": false}

CSV (``.csv``) with a header row; a cell starting with ``{`` is inline JSON
(quote it), anything else a file path::

    offset_s,dag,input,harvest
    0.0,video,inputs/clip1.json,true
    1.5,video,"{""url"": ""...""}",0

``offset`` and ``arrival_s`` are accepted for ``offset_s``. ``harvest`` true/false
means policy ``thesis``/``off``. Blank lines and lines starting with ``#`` are
skipped. Relative input paths are resolved against the trace file's folder.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from gleaner.actions import is_entity_name
from gleaner.errors import BadRequest
from gleaner.harvest_policies import HARVEST_POLICIES, requested_policy

_JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
_OFFSET_KEYS = ("offset_s", "offset", "arrival_s")
_KEYS = frozenset((*_OFFSET_KEYS, "dag", "input", "policy", "harvest"))
_CSV_BOOLS = {"true": True, "1": True, "false": False, "0": False}


class TraceError(BadRequest):
    """A trace that cannot be replayed; ``line`` is 1-based, 0 for the file as a whole."""

    def __init__(self, line: int, reason: str, path: Path | str | None = None) -> None:
        where = f"trace {path} line {line}" if path is not None else f"trace line {line}"
        super().__init__(f"{where}: {reason}")
        self.line = line
        self.reason = reason
        self.path = path


class _Unusable(Exception):
    """An input file that cannot be used; the caller adds the line number."""


@dataclass(frozen=True, slots=True)
class TraceEntry:
    offset_s: float  # arrival time, seconds after the replay starts (>= 0)
    dag: str
    input: dict[str, Any] | None = None  # inline JSON object input
    input_path: Path | None = None  # or a file holding the JSON object input
    policy: str | None = None  # harvesting policy for this request; None = the run's policy
    line: int = 0  # 1-based line in the trace file (0 when synthesised)

    def __post_init__(self) -> None:
        if (self.input is None) == (self.input_path is None):
            raise ValueError("a trace entry needs exactly one of input and input_path")

    def load_input(self) -> dict[str, Any]:
        """The request's input: a copy of the inline object, or the file read and parsed now."""
        if self.input is not None:
            return dict(self.input)
        assert self.input_path is not None  # __post_init__ guarantees one of the two
        try:
            return _read_object(self.input_path)
        except _Unusable as exc:
            raise TraceError(self.line, str(exc)) from exc


def _read_object(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise _Unusable(f"input file {path} does not exist") from exc
    except OSError as exc:
        raise _Unusable(f"input file {path} is unreadable: {exc.strerror or exc}") from exc
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _Unusable(f"input file {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise _Unusable(f"input file {path} must hold a JSON object, got {type(data).__name__}")
    return data


def read_trace(
    path: Path,
    *,
    known_dags: Collection[str] | None = None,
    policies: Collection[str] = HARVEST_POLICIES,
    check_inputs: bool = True,
) -> list[TraceEntry]:
    """Read and validate a whole trace; entries come back sorted by ``offset_s``.

    Sorting is stable (equal offsets keep file order) because an open-loop replay
    sends in time order. Every line is checked before anything is returned, and
    the first bad one raises :class:`TraceError` with its line number. With
    ``check_inputs`` each distinct input file is read and parsed once, here.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (*_JSON_SUFFIXES, ".csv"):
        raise TraceError(0, f"unsupported suffix {suffix!r} (use .jsonl, .ndjson, .json or .csv)", path)
    try:
        # utf-8-sig: spreadsheets often save CSV with a byte-order mark
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise TraceError(0, "file does not exist", path) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceError(0, f"cannot read the file: {exc}", path) from exc

    # split on \n only: str.splitlines also breaks on characters valid inside JSON strings
    lines = [(n, line.rstrip("\r")) for n, line in enumerate(text.split("\n"), start=1)]
    lines = [(n, line) for n, line in lines if line.strip() and not line.lstrip().startswith("#")]
    rows = _csv_rows(lines, path) if suffix == ".csv" else _json_rows(lines, path)

    checker = _Checker(path, known_dags, policies, check_inputs)
    entries = [checker.entry(n, row) for n, row in rows]
    if not entries:
        raise TraceError(0, "no entries (only blank or comment lines)", path)
    return sorted(entries, key=lambda e: e.offset_s)


# Both readers yield row by row, so that syntax and field errors are raised in line order.
def _json_rows(lines: list[tuple[int, str]], path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for n, line in lines:
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            hint = " (the trace must be JSON lines, one object per line)" if line.lstrip()[:1] == "[" else ""
            raise TraceError(n, f"not valid JSON: {exc}{hint}", path) from exc
        if not isinstance(data, dict):
            raise TraceError(n, f"expected a JSON object, got {type(data).__name__}", path)
        yield n, data


def _csv_rows(lines: list[tuple[int, str]], path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    # one physical line at a time, so error line numbers are exact (no multi-line cells)
    def cells(n: int, line: str) -> list[str]:
        try:
            return [cell.strip() for cell in next(csv.reader([line], strict=True))]
        except csv.Error as exc:
            raise TraceError(n, f"not valid CSV: {exc}", path) from exc

    if not lines:
        return
    header_line, header_text = lines[0]
    header = cells(header_line, header_text)
    _check_keys(header_line, header, path, what="column")
    duplicates = sorted({c for c in header if header.count(c) > 1})
    if duplicates:
        raise TraceError(header_line, f"duplicate column(s) {_quoted(duplicates)}", path)
    for n, line in lines[1:]:
        row = cells(n, line)
        if len(row) != len(header):
            hint = "; quote cells holding inline JSON" if len(row) > len(header) else ""
            raise TraceError(n, f"{len(row)} cells but the header has {len(header)} columns{hint}", path)
        yield n, _from_csv(n, dict(zip(header, row, strict=True)), path)


def _from_csv(n: int, row: dict[str, str], path: Path) -> dict[str, Any]:
    """CSV cells as the JSON-lines fields they stand for; empty cells are absent."""
    data: dict[str, Any] = {}
    for key, cell in row.items():
        if cell == "":
            continue
        if key in _OFFSET_KEYS:
            try:
                data[key] = float(cell)
            except ValueError as exc:
                raise TraceError(n, f"{key} must be a number, got {cell!r}", path) from exc
        elif key == "harvest":
            if cell.lower() not in _CSV_BOOLS:
                raise TraceError(n, f"harvest must be true, false, 1, 0 or empty, got {cell!r}", path)
            data[key] = _CSV_BOOLS[cell.lower()]
        elif key == "input" and cell.startswith("{"):
            try:
                data[key] = orjson.loads(cell)
            except orjson.JSONDecodeError as exc:
                raise TraceError(n, f"inline input is not valid JSON: {exc}", path) from exc
        else:
            data[key] = cell
    return data


def _quoted(names: Collection[str]) -> str:
    return ", ".join(f"'{name}'" for name in names)


def _check_keys(n: int, keys: Collection[str], path: Path, *, what: str) -> None:
    unknown = sorted(set(keys) - _KEYS)
    if unknown:
        allowed = ", ".join(sorted(_KEYS))
        raise TraceError(n, f"unknown {what}(s) {_quoted(unknown)} (allowed: {allowed})", path)


class _Checker:
    """Turns one parsed row into a TraceEntry, remembering input files already read."""

    def __init__(
        self, path: Path, known_dags: Collection[str] | None, policies: Collection[str], check_inputs: bool
    ) -> None:
        self.path = path
        self.folder = path.parent.resolve()
        self.known_dags = known_dags
        self.policies = policies
        self.check_inputs = check_inputs
        self.inputs_seen: dict[Path, str | None] = {}  # file -> why it is unusable, None if fine

    def fail(self, n: int, reason: str) -> TraceError:
        return TraceError(n, reason, self.path)

    def entry(self, n: int, row: dict[str, Any]) -> TraceEntry:
        _check_keys(n, row.keys(), self.path, what="key")
        return TraceEntry(
            offset_s=self.offset(n, row),
            dag=self.dag(n, row),
            policy=self.policy(n, row),
            line=n,
            **self.input(n, row),
        )

    def offset(self, n: int, row: dict[str, Any]) -> float:
        given = [key for key in _OFFSET_KEYS if row.get(key) is not None]
        if not given:
            raise self.fail(n, "missing offset_s (seconds after the start; or offset / arrival_s)")
        if len(given) > 1:
            raise self.fail(n, f"give one of {_quoted(given)}, not several")
        key = given[0]
        value = row[key]
        # bool is an int subclass; true is not an offset
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(n, f"{key} must be a number, got {type(value).__name__}")
        try:
            offset = float(value)
        except OverflowError:  # an integer too large for a float
            offset = math.inf
        if not math.isfinite(offset):
            raise self.fail(n, f"{key} must be finite, got {offset}")
        if offset < 0:
            raise self.fail(n, f"{key} must be >= 0, got {value}")
        return offset

    def dag(self, n: int, row: dict[str, Any]) -> str:
        value = row.get("dag")
        if value is None or value == "":
            raise self.fail(n, "missing dag")
        if not isinstance(value, str) or not is_entity_name(value):
            raise self.fail(n, f"dag is not a valid name: {value!r}")
        if self.known_dags is not None and value not in self.known_dags:
            known = ", ".join(sorted(self.known_dags)) or "none"
            raise self.fail(n, f"unknown DAG {value!r} (known: {known})")
        return value

    def policy(self, n: int, row: dict[str, Any]) -> str | None:
        policy, harvest = row.get("policy"), row.get("harvest")
        if policy is not None and not isinstance(policy, str):
            raise self.fail(n, f"policy must be a string, got {type(policy).__name__}")
        if harvest is not None and not isinstance(harvest, bool):
            raise self.fail(n, f"harvest must be true or false, got {harvest!r}")
        try:
            policy = requested_policy(policy, harvest)
        except ValueError as exc:
            raise self.fail(n, str(exc)) from exc
        if policy is not None and policy not in self.policies:
            raise self.fail(n, f"unknown policy {policy!r} (known: {', '.join(sorted(self.policies))})")
        return policy

    def input(self, n: int, row: dict[str, Any]) -> dict[str, Any]:
        value = row.get("input")
        if value is None or value == "":
            raise self.fail(n, "missing input (a JSON object, or the path of a file holding one)")
        if isinstance(value, dict):
            return {"input": value}
        if not isinstance(value, str):
            raise self.fail(n, f"input must be a JSON object or a file path, got {type(value).__name__}")
        file = (self.folder / Path(value).expanduser()).resolve()
        if self.check_inputs:
            if file not in self.inputs_seen:
                try:
                    _read_object(file)
                    self.inputs_seen[file] = None
                except _Unusable as exc:
                    self.inputs_seen[file] = str(exc)
            reason = self.inputs_seen[file]
            if reason is not None:
                raise self.fail(n, reason)
        return {"input_path": file}


def write_trace(path: Path, entries: Sequence[TraceEntry]) -> None:
    """Write entries as JSON lines that :func:`read_trace` reads back.

    Input files inside the trace's folder are written relative to it, so the
    folder can be moved as a whole; files elsewhere keep their absolute path.
    """
    path = Path(path)
    if path.suffix.lower() not in _JSON_SUFFIXES:
        raise ValueError(f"write_trace writes JSON lines; use a .jsonl, .ndjson or .json name, not {path}")
    if not entries:
        raise ValueError("no entries to write (an empty trace cannot be read back)")
    folder = path.parent.resolve()
    out = bytearray()
    for entry in entries:
        data: dict[str, Any] = {"offset_s": entry.offset_s, "dag": entry.dag}
        if entry.input is not None:
            data["input"] = entry.input
        elif entry.input_path is not None:
            file = entry.input_path.resolve()
            data["input"] = str(file.relative_to(folder) if file.is_relative_to(folder) else file)
        if entry.policy is not None:
            data["policy"] = entry.policy
        out += orjson.dumps(data) + b"\n"
    path.write_bytes(bytes(out))
