"""``gleaner action`` and ``gleaner activation``: wsk's parsing rules, the bodies and
queries the commands send, and what they print. The gateway is an httpx MockTransport."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from gleaner.cli import wsk
from gleaner.cli.main import build_parser, main
from gleaner.errors import GleanerError
from gleaner.gateway_client import OpenWhiskClient, Target


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("42", 42),
        ("2.5", 2.5),
        ("true", True),
        ("null", None),
        ('"quoted"', "quoted"),
        ('{"a": [1, 2]}', {"a": [1, 2]}),
        ("hello", "hello"),  # not JSON: the plain string
        ("{not json", "{not json"),
        ("", ""),
    ],
)
def test_a_param_value_is_json_when_it_parses_else_the_string(raw: str, value: Any) -> None:
    assert wsk.parse_value(raw) == value


def _args(*argv: str) -> Any:
    return build_parser().parse_args(list(argv))


def test_params_from_the_file_then_the_flags_which_win(tmp_path: Path) -> None:
    file = tmp_path / "params.json"
    file.write_text(json.dumps({"a": 1, "b": "from file"}))
    args = _args("action", "invoke", "f", "-P", str(file), "-p", "b", "[1, 2]", "-p", "c", "x")
    assert wsk.params_from(args) == {"a": 1, "b": [1, 2], "c": "x"}
    assert wsk.params_from(_args("action", "invoke", "f")) == {}


def test_a_param_file_must_hold_an_object(tmp_path: Path) -> None:
    file = tmp_path / "params.json"
    file.write_text("[1, 2]")
    with pytest.raises(GleanerError, match="must hold a JSON object"):
        wsk.params_from(_args("action", "invoke", "f", "-P", str(file)))


def test_a_py_file_is_its_source_and_a_zip_goes_base64(tmp_path: Path) -> None:
    source = tmp_path / "f.py"
    source.write_text("def main(args):\n    return args\n")
    assert wsk.exec_from_file(source, None, None) == {
        "kind": "python:3",
        "binary": False,
        "code": "def main(args):\n    return args\n",
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("__main__.py", "def run(args):\n    return {}\n")
    packed = tmp_path / "f.zip"
    packed.write_bytes(buf.getvalue())
    exec_ = wsk.exec_from_file(packed, "python:3.11", "run")
    assert (exec_["kind"], exec_["binary"], exec_["main"]) == ("python:3.11", True, "run")
    assert base64.b64decode(exec_["code"]) == buf.getvalue()


def test_a_missing_file_or_an_unknown_kind_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(GleanerError, match="does not exist"):
        wsk.exec_from_file(tmp_path / "nope.py", None, None)
    other = tmp_path / "f.js"
    other.write_text("function main() {}")
    with pytest.raises(GleanerError, match="cannot tell the kind"):
        wsk.exec_from_file(other, None, None)


# --------------------------------------------------------------------------- commands


class Gateway:
    """Records each request; answers with ``reply(request)`` (status, JSON body)."""

    def __init__(self, reply: Callable[[httpx.Request], tuple[int, Any]]) -> None:
        self.reply = reply
        self.seen: list[httpx.Request] = []

    def client(self, _args: Any) -> OpenWhiskClient:
        client = OpenWhiskClient(Target("http://gateway.test", "u:k"))
        client._http = httpx.Client(
            base_url="http://gateway.test/api/v1/namespaces/_", transport=httpx.MockTransport(self.answer)
        )
        return client

    def answer(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        status, body = self.reply(request)
        return httpx.Response(status, json=body)


def on(monkeypatch: pytest.MonkeyPatch, reply: Callable[[httpx.Request], tuple[int, Any]]) -> Gateway:
    gateway = Gateway(reply)
    monkeypatch.setattr(wsk, "_client", gateway.client)
    return gateway


def test_action_create_sends_the_code_limits_and_parameters(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "f.py"
    source.write_text("def main(args):\n    return {}\n")
    gateway = on(monkeypatch, lambda _r: (200, {}))
    argv = ["action", "create", "f", str(source), "-m", "256", "-c", "0.5", "-p", "n", "3", "-p", "s", "hi"]
    assert main(argv) == 0
    (request,) = gateway.seen
    assert (request.method, request.url.path) == ("PUT", "/api/v1/namespaces/_/actions/f")
    assert request.url.params["overwrite"] == "false"
    assert json.loads(request.content) == {
        "exec": {"kind": "python:3", "binary": False, "code": "def main(args):\n    return {}\n"},
        "limits": {"memory": 256, "cpu": 0.5},  # only the limits given
        "parameters": [{"key": "n", "value": 3}, {"key": "s", "value": "hi"}],
    }
    assert capsys.readouterr().out == "ok: created action f\n"


def test_action_update_may_change_limits_alone_but_create_needs_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    gateway = on(monkeypatch, lambda _r: (200, {}))
    assert main(["action", "update", "f", "-t", "5000", "-l", "2"]) == 0
    (request,) = gateway.seen
    assert request.url.params["overwrite"] == "true"
    assert json.loads(request.content) == {"limits": {"timeout": 5000, "logs": 2}}
    assert capsys.readouterr().out == "ok: updated action f\n"
    with pytest.raises(SystemExit):  # argparse: the file is required
        main(["action", "create", "f"])
    assert len(gateway.seen) == 1


def test_invoke_with_result_waits_and_prints_the_result_alone(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    gateway = on(monkeypatch, lambda _r: (200, {"n": 4}))
    assert main(["action", "invoke", "f", "-r", "-p", "n", "3"]) == 0
    (request,) = gateway.seen
    assert (request.url.params["blocking"], request.url.params["result"]) == ("true", "true")
    assert json.loads(request.content) == {"n": 3}
    assert json.loads(capsys.readouterr().out) == {"n": 4}


def test_a_non_blocking_invoke_prints_the_id_and_a_failed_run_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    on(monkeypatch, lambda _r: (202, {"activationId": "a1"}))
    assert main(["action", "invoke", "f"]) == 0
    assert capsys.readouterr().out == "ok: invoked /_/f with id a1\n"

    failed = {"activationId": "a2", "response": {"success": False, "result": {"error": "boom"}}}
    gateway = on(monkeypatch, lambda _r: (502, failed))
    assert main(["action", "invoke", "f", "-b"]) == 1
    assert gateway.seen[0].url.params["blocking"] == "true"
    out = capsys.readouterr().out
    assert out.startswith("ok: invoked /_/f with id a2\n") and json.loads(out.split("\n", 1)[1]) == failed


def test_an_api_error_is_one_line_on_stderr_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    on(monkeypatch, lambda _r: (404, {"error": "The requested resource does not exist.", "code": "x"}))
    assert main(["action", "get", "nope"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("error: ") and captured.err.count("\n") == 1


def test_activation_list_asks_only_for_the_filters_given_and_names_each_status(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [
        {"activationId": "a" * 32, "name": "f", "start": 1_700_000_000_000, "duration": 12, "statusCode": 0},
        {"activationId": "b" * 32, "name": "g", "start": 1_700_000_000_000, "duration": 7, "statusCode": 1},
        {"activationId": "c" * 32, "name": "h", "start": 1_700_000_000_000, "statusCode": 3},
    ]
    gateway = on(monkeypatch, lambda _r: (200, rows))
    assert main(["activation", "list", "f", "-l", "5", "--since", "10"]) == 0
    assert dict(gateway.seen[0].url.params) == {"limit": "5", "skip": "0", "since": "10", "name": "f"}
    header, *lines = capsys.readouterr().out.splitlines()
    assert header.split() == ["Datetime", "Activation", "ID", "Status", "Duration", "Entity"]
    assert [line.split()[2:] for line in lines] == [
        ["a" * 32, "success", "12ms", "f"],
        ["b" * 32, "application", "error", "7ms", "g"],
        ["c" * 32, "internal", "0ms", "h"],
    ]


def test_activation_result_and_logs_print_their_part(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def reply(request: httpx.Request) -> tuple[int, Any]:
        if request.url.path.endswith("/result"):
            return 200, {"result": {"n": 1}, "success": True}
        return 200, {"logs": ["2024-01-01T00:00:00.000000Z stdout: hi", "second"]}

    gateway = on(monkeypatch, reply)
    assert main(["activation", "result", "a1"]) == 0
    assert json.loads(capsys.readouterr().out) == {"n": 1}
    assert main(["activation", "logs", "a1"]) == 0
    assert capsys.readouterr().out == "2024-01-01T00:00:00.000000Z stdout: hi\nsecond\n"
    assert [r.url.path for r in gateway.seen] == [
        "/api/v1/namespaces/_/activations/a1/result",
        "/api/v1/namespaces/_/activations/a1/logs",
    ]
