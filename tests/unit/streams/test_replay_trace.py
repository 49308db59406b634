import os
from pathlib import Path

import orjson
import pytest

from gleaner.errors import BadRequest
from streams.gateway.errors import status_of
from streams.replay.trace import TraceEntry, TraceError, read_trace, write_trace


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _error(path: Path, line: int, **kw) -> TraceError:
    with pytest.raises(TraceError) as info:
        read_trace(path, **kw)
    assert info.value.line == line
    assert str(info.value).startswith(f"trace {path} line {line}: ")
    assert str(info.value).endswith(info.value.reason)
    return info.value


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return _write(tmp_path / "inputs" / "clip.json", '{"url": "s3://clip"}')


# --- JSON lines -------------------------------------------------------------------------


def test_jsonl_inline_and_relative_file_inputs(tmp_path, clip):
    trace = _write(
        tmp_path / "t.jsonl",
        '{"offset_s": 0, "dag": "video", "input": {"n": 1}}\n'
        '{"offset_s": 1.5, "dag": "video", "input": "inputs/clip.json", "policy": "off"}\n',
    )
    first, second = read_trace(trace)
    assert first == TraceEntry(offset_s=0.0, dag="video", input={"n": 1}, line=1)
    assert second.input is None and second.input_path == clip.resolve()
    assert second.policy == "off" and second.line == 2
    assert second.load_input() == {"url": "s3://clip"}
    assert first.load_input() == {"n": 1}


def test_relative_paths_resolve_against_the_trace_folder_not_the_cwd(tmp_path, clip, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    trace = _write(tmp_path / "t.ndjson", '{"offset_s": 0, "dag": "d", "input": "inputs/clip.json"}\n')
    (entry,) = read_trace(trace)
    assert entry.input_path == clip.resolve()


def test_absolute_input_path_is_kept(tmp_path, clip):
    trace = _write(
        tmp_path / "sub" / "t.json", orjson.dumps({"offset_s": 0, "dag": "d", "input": str(clip)}).decode()
    )
    assert read_trace(trace)[0].input_path == clip.resolve()


@pytest.mark.parametrize("key", ["offset_s", "offset", "arrival_s"])
def test_offset_aliases(tmp_path, key):
    trace = _write(tmp_path / "t.jsonl", f'{{"{key}": 2.5, "dag": "d", "input": {{}}}}\n')
    assert read_trace(trace)[0].offset_s == 2.5


def test_two_offset_aliases_on_one_line_is_an_error(tmp_path):
    trace = _write(tmp_path / "t.jsonl", '{"offset_s": 1, "offset": 2, "dag": "d", "input": {}}\n')
    assert "'offset_s', 'offset'" in _error(trace, 1).reason


def test_comments_and_blank_lines_are_skipped_but_counted(tmp_path):
    trace = _write(
        tmp_path / "t.jsonl",
        '# a replay trace\n\n{"offset_s": 0, "dag": "d", "input": {}}\n   \n  # another\n{"offset_s": -1}\n',
    )
    assert "must be >= 0" in _error(trace, 6).reason


def test_entries_are_sorted_by_offset_stably(tmp_path):
    trace = _write(
        tmp_path / "t.jsonl",
        '{"offset_s": 3, "dag": "c", "input": {}}\n'
        '{"offset_s": 1, "dag": "a", "input": {}}\n'
        '{"offset_s": 3, "dag": "b", "input": {}}\n'
        '{"offset_s": 0.5, "dag": "z", "input": {}}\n',
    )
    entries = read_trace(trace)
    assert [(e.offset_s, e.dag, e.line) for e in entries] == [
        (0.5, "z", 4),
        (1.0, "a", 2),
        (3.0, "c", 1),
        (3.0, "b", 3),
    ]


# --- harvest and policy ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "policy"),
    [
        ({"harvest": True}, "thesis"),  # the default harvesting policy
        ({"harvest": False}, "off"),
        ({"harvest": True, "policy": "thesis"}, "thesis"),
        ({"policy": "off"}, "off"),
        ({}, None),
        ({"harvest": None}, None),
    ],
)
def test_harvest_maps_to_a_policy(tmp_path, fields, policy):
    line = orjson.dumps({"offset_s": 0, "dag": "d", "input": {}, **fields}).decode()
    assert read_trace(_write(tmp_path / "t.jsonl", line))[0].policy == policy


def test_harvest_contradicting_policy_is_an_error(tmp_path):
    trace = _write(
        tmp_path / "t.jsonl", '{"offset_s": 0, "dag": "d", "input": {}, "harvest": false, "policy": "thesis"}'
    )
    assert _error(trace, 1).reason == "harvest false contradicts policy 'thesis'"


def test_unknown_policy_and_custom_policies(tmp_path):
    trace = _write(tmp_path / "t.jsonl", '{"offset_s": 0, "dag": "d", "input": {}, "policy": "greedy"}')
    assert (
        _error(trace, 1).reason
        == "unknown policy 'greedy' (known: gleaner, gleaner-idle, libra, off, openwhisk, thesis)"
    )
    assert read_trace(trace, policies=("greedy",))[0].policy == "greedy"


def test_harvest_must_be_a_boolean(tmp_path):
    trace = _write(tmp_path / "t.jsonl", '{"offset_s": 0, "dag": "d", "input": {}, "harvest": "yes"}')
    assert "harvest must be true or false" in _error(trace, 1).reason


# --- JSON-lines errors -------------------------------------------------------------------

_OK = '{"offset_s": 0, "dag": "d", "input": {}}\n'


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("{not json", "not valid JSON"),
        ('[{"offset_s": 0}]', "expected a JSON object, got list"),
        ('"text"', "expected a JSON object, got str"),
        ('{"dag": "d", "input": {}}', "missing offset_s"),
        ('{"offset_s": null, "dag": "d", "input": {}}', "missing offset_s"),
        ('{"offset_s": -0.5, "dag": "d", "input": {}}', "offset_s must be >= 0, got -0.5"),
        ('{"offset_s": "1", "dag": "d", "input": {}}', "offset_s must be a number, got str"),
        ('{"offset_s": true, "dag": "d", "input": {}}', "offset_s must be a number, got bool"),
        ('{"offset_s": 1e999, "dag": "d", "input": {}}', "not valid JSON"),
        ('{"offset_s": 0, "input": {}}', "missing dag"),
        ('{"offset_s": 0, "dag": "", "input": {}}', "missing dag"),
        ('{"offset_s": 0, "dag": "bad/name", "input": {}}', "dag is not a valid name: 'bad/name'"),
        ('{"offset_s": 0, "dag": 7, "input": {}}', "dag is not a valid name: 7"),
        ('{"offset_s": 0, "dag": "d"}', "missing input"),
        (
            '{"offset_s": 0, "dag": "d", "input": [1, 2]}',
            "input must be a JSON object or a file path, got list",
        ),
        ('{"offset_s": 0, "dag": "d", "input": {}, "policy": 1}', "policy must be a string, got int"),
        ('{"offset_s": 0, "dag": "d", "input": {}, "when": 1, "extra": 2}', "unknown key(s) 'extra', 'when'"),
    ],
)
def test_jsonl_errors_name_the_line(tmp_path, bad, reason):
    trace = _write(tmp_path / "t.jsonl", _OK + "\n" + bad + "\n" + _OK)
    assert reason in _error(trace, 3).reason


def test_json_array_file_gets_a_hint(tmp_path):
    trace = _write(tmp_path / "t.json", '[\n  {"offset_s": 0}\n]\n')
    assert "one object per line" in _error(trace, 1).reason


def test_the_first_bad_line_is_reported(tmp_path):
    # a field error on line 2 wins over a syntax error on line 3, in both formats
    trace = _write(tmp_path / "t.jsonl", _OK + '{"offset_s": -1, "dag": "d", "input": {}}\n{"broken\n')
    assert "must be >= 0" in _error(trace, 2).reason
    trace = _write(tmp_path / "t.csv", "offset_s,dag,input\n-1,d,{}\n0,d,{},too,many\n")
    assert "must be >= 0" in _error(trace, 2).reason


def test_unknown_dag_lists_the_known_ones(tmp_path):
    trace = _write(tmp_path / "t.jsonl", _OK + '{"offset_s": 1, "dag": "x", "input": {}}\n')
    # "d" on line 1 is unknown too
    assert _error(trace, 1, known_dags={"b", "a"}).reason == "unknown DAG 'd' (known: a, b)"
    assert _error(trace, 2, known_dags=["d", "a"]).reason == "unknown DAG 'x' (known: a, d)"
    assert [e.dag for e in read_trace(trace, known_dags={"d", "x"})] == ["d", "x"]


def test_missing_input_file_is_an_error_unless_unchecked(tmp_path):
    trace = _write(tmp_path / "t.jsonl", _OK + '{"offset_s": 1, "dag": "d", "input": "nope.json"}\n')
    missing = (tmp_path / "nope.json").resolve()
    assert _error(trace, 2).reason == f"input file {missing} does not exist"
    (entry,) = [e for e in read_trace(trace, check_inputs=False) if e.input_path is not None]
    assert entry.input_path == missing
    with pytest.raises(TraceError) as info:
        entry.load_input()
    assert info.value.line == 2 and "does not exist" in info.value.reason


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("[1, 2]", "must hold a JSON object, got list"),
        ("{oops", "is not valid JSON"),
        ("", "is not valid JSON"),
    ],
)
def test_input_file_must_hold_a_json_object(tmp_path, content, reason):
    _write(tmp_path / "in.json", content)
    trace = _write(tmp_path / "t.jsonl", '# x\n{"offset_s": 0, "dag": "d", "input": "in.json"}\n')
    assert reason in _error(trace, 2).reason


def test_unreadable_input_file(tmp_path):
    (tmp_path / "dir.json").mkdir()  # a folder where a file is expected cannot be read
    trace = _write(tmp_path / "t.jsonl", '{"offset_s": 0, "dag": "d", "input": "dir.json"}\n')
    assert "is unreadable" in _error(trace, 1).reason


def test_each_input_file_is_read_once(tmp_path, clip, monkeypatch):
    import streams.replay.trace as trace_module

    reads: list[Path] = []
    real = trace_module._read_object

    def counting(path: Path):
        reads.append(path)
        return real(path)

    monkeypatch.setattr(trace_module, "_read_object", counting)
    lines = "".join(f'{{"offset_s": {i}, "dag": "d", "input": "inputs/clip.json"}}\n' for i in range(5))
    lines += '{"offset_s": 9, "dag": "d", "input": "./inputs/../inputs/clip.json"}\n'
    assert len(read_trace(_write(tmp_path / "t.jsonl", lines))) == 6
    assert reads == [clip.resolve()]


def test_empty_trace_is_an_error(tmp_path):
    trace = _write(tmp_path / "t.jsonl", "# nothing yet\n\n")
    assert "no entries" in _error(trace, 0).reason


def test_missing_trace_file_and_unsupported_suffix(tmp_path):
    assert _error(tmp_path / "absent.jsonl", 0).reason == "file does not exist"
    assert "unsupported suffix '.txt'" in _error(_write(tmp_path / "t.txt", _OK), 0).reason


def test_trace_error_is_a_bad_request():
    error = TraceError(4, "why", "x.jsonl")
    assert isinstance(error, BadRequest) and status_of(error) == 400
    assert str(error) == "trace x.jsonl line 4: why"
    assert (error.line, error.reason) == (4, "why")


# --- CSV ---------------------------------------------------------------------------------


def test_csv_inline_and_file_inputs(tmp_path, clip):
    trace = _write(
        tmp_path / "t.csv",
        "# header next\n"
        "arrival_s, dag ,input,harvest,policy\n"
        '2,video,"{""n"": 1, ""m"": [2]}",1,\n'
        "0.25,video,inputs/clip.json,false,off\n"
        "1,other,inputs/clip.json,,\n",
    )
    entries = read_trace(trace)
    assert [(e.offset_s, e.dag, e.policy, e.line) for e in entries] == [
        (0.25, "video", "off", 4),
        (1.0, "other", None, 5),
        (2.0, "video", "thesis", 3),
    ]
    assert entries[0].input_path == clip.resolve() and entries[0].load_input() == {"url": "s3://clip"}
    assert entries[2].input == {"n": 1, "m": [2]}


@pytest.mark.parametrize(
    ("cell", "policy"), [("true", "thesis"), ("TRUE", "thesis"), ("0", "off"), ("", None)]
)
def test_csv_harvest_cells(tmp_path, cell, policy):
    trace = _write(tmp_path / "t.csv", f"offset,dag,input,harvest\n0,d,{{}},{cell}\n")
    assert read_trace(trace)[0].policy == policy


def test_csv_with_a_byte_order_mark(tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_bytes(b"\xef\xbb\xbfoffset_s,dag,input\n0,d,{}\n")
    assert read_trace(trace)[0].dag == "d"


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("abc,d,{}", "offset_s must be a number, got 'abc'"),
        ("nan,d,{}", "offset_s must be finite, got nan"),
        ("inf,d,{}", "offset_s must be finite, got inf"),
        ("-2,d,{}", "offset_s must be >= 0"),
        (",d,{}", "missing offset_s"),
        ("0,,{}", "missing dag"),
        ("0,d,", "missing input"),
        ("0,d,{broken", "inline input is not valid JSON"),
        ('0,d,"{""a"": 1}",extra', "4 cells but the header has 3 columns"),
        ('0,d,{"a": 1, "b": 2}', "quote cells holding inline JSON"),
        ("0,d", "2 cells but the header has 3 columns"),
        ('0,d,"unterminated', "not valid CSV"),
        ("0,d,missing.json", "does not exist"),
    ],
)
def test_csv_errors_name_the_line(tmp_path, row, reason):
    trace = _write(tmp_path / "t.csv", f"offset_s,dag,input\n0,d,{{}}\n\n{row}\n")
    assert reason in _error(trace, 4).reason


def test_csv_harvest_cell_must_be_a_boolean(tmp_path):
    trace = _write(tmp_path / "t.csv", "offset_s,dag,input,harvest\n0,d,{},1\n\n0,d,{},maybe\n")
    assert _error(trace, 4).reason == "harvest must be true, false, 1, 0 or empty, got 'maybe'"


def test_csv_inline_json_that_is_not_an_object(tmp_path):
    # a cell starting with "{" is inline JSON; anything else is a path, so "[1]" is a missing file
    trace = _write(tmp_path / "t.csv", 'offset_s,dag,input\n0,d,"[1]"\n')
    assert "does not exist" in _error(trace, 2).reason


def test_csv_unknown_and_duplicate_columns(tmp_path):
    trace = _write(tmp_path / "t.csv", "\n# c\noffset_s,dag,input,priority,zone\n0,d,{},1,a\n")
    reason = _error(trace, 3).reason
    assert reason.startswith("unknown column(s) 'priority', 'zone' (allowed: ")
    trace = _write(tmp_path / "t2.csv", "offset_s,dag,input,dag\n0,d,{},d\n")
    assert _error(trace, 1).reason == "duplicate column(s) 'dag'"


def test_csv_with_only_a_header_is_empty(tmp_path):
    trace = _write(tmp_path / "t.csv", "offset_s,dag,input\n")
    assert "no entries" in _error(trace, 0).reason


# --- entries and writing -----------------------------------------------------------------


def test_an_entry_needs_exactly_one_input():
    with pytest.raises(ValueError, match="exactly one"):
        TraceEntry(offset_s=0, dag="d")
    with pytest.raises(ValueError, match="exactly one"):
        TraceEntry(offset_s=0, dag="d", input={}, input_path=Path("x.json"))


def test_load_input_returns_a_copy():
    entry = TraceEntry(offset_s=0, dag="d", input={"a": 1})
    entry.load_input()["a"] = 2
    assert entry.load_input() == {"a": 1}


def test_write_then_read_round_trip(tmp_path, clip):
    inside = _write(tmp_path / "traces" / "in" / "i.json", '{"i": true}')
    entries = [
        TraceEntry(offset_s=0.0, dag="video", input={"n": 1, "s": "x"}, policy="thesis"),
        TraceEntry(offset_s=0.5, dag="video", input_path=inside),
        TraceEntry(offset_s=1.25, dag="other", input_path=clip, policy="off"),
    ]
    trace = tmp_path / "traces" / "t.jsonl"
    write_trace(trace, entries)
    lines = [orjson.loads(line) for line in trace.read_bytes().splitlines()]
    assert lines[1]["input"] == os.path.join("in", "i.json")  # inside the trace's folder: relative
    assert lines[2]["input"] == str(clip.resolve())  # outside it: absolute
    assert "policy" not in lines[1]

    again = read_trace(trace)
    assert [(e.offset_s, e.dag, e.input, e.policy, e.line) for e in again] == [
        (0.0, "video", {"n": 1, "s": "x"}, "thesis", 1),
        (0.5, "video", None, None, 2),
        (1.25, "other", None, "off", 3),
    ]
    assert [e.input_path for e in again] == [None, inside.resolve(), clip.resolve()]
    assert [e.load_input() for e in again] == [{"n": 1, "s": "x"}, {"i": True}, {"url": "s3://clip"}]


def test_write_trace_refuses_csv_and_empty(tmp_path):
    entry = TraceEntry(offset_s=0, dag="d", input={})
    with pytest.raises(ValueError, match="JSON lines"):
        write_trace(tmp_path / "t.csv", [entry])
    with pytest.raises(ValueError, match="no entries"):
        write_trace(tmp_path / "t.jsonl", [])
    assert not (tmp_path / "t.csv").exists() and not (tmp_path / "t.jsonl").exists()
