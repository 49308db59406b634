"""The action proxy run on the host as a subprocess, driven by ActionProxyClient. No Docker."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gleaner.errors import ContainerError
from invoker_agent.docker_engine import PROXY_TOKEN_ENV
from invoker_agent.proxy_client import ActionProxyClient, InitError, RunResponse
from invoker_agent.runtime import actionproxy

PROXY = Path(__file__).resolve().parents[3] / "invoker_agent" / "runtime" / "actionproxy.py"
TOKEN = "t0k3n-of-this-container-" + "z" * 20
LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z (stdout|stderr): ")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(port: int, token: str | None = TOKEN, **extra_env: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != PROXY_TOKEN_ENV}
    if token is not None:
        env[PROXY_TOKEN_ENV] = token
    env.update(extra_env)
    return subprocess.Popen(
        [sys.executable, "-u", str(PROXY), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait(5)


@pytest.fixture()
def proxy() -> Iterator[ActionProxyClient]:
    port = _free_port()
    proc = _start(port)
    client = ActionProxyClient("127.0.0.1", port, token=TOKEN)
    try:
        client.wait_ready(10)
        yield client
    finally:
        client.close()
        _stop(proc)


def init_source(client: ActionProxyClient, source: str, main: str = "main", **env: str) -> None:
    client.init(name="test", main=main, code=textwrap.dedent(source), binary=False, env=env)


def run(client: ActionProxyClient, args: dict[str, Any] | None = None, **kw: Any) -> RunResponse:
    params: dict[str, Any] = {
        "args": args or {},
        "namespace": "guest",
        "action_name": "/guest/test",
        "activation_id": "a1b2c3",
        "deadline_ms": 1_700_000_000_000,
        "api_host": "http://gw:3233",
        "timeout_s": 20.0,
        "log_limit_bytes": 10 * 2**20,
    }
    params.update(kw)
    return client.run(**params)


def zip_b64(files: dict[str, str]) -> str:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, textwrap.dedent(text))
    return base64.b64encode(buf.getvalue()).decode()


def test_plain_source_init_and_run(proxy: ActionProxyClient) -> None:
    init_source(proxy, "def main(args):\n    return {'greeting': 'hello ' + args.get('name', 'world')}\n")
    resp = run(proxy, {"name": "gleaner"})
    assert resp.ok and resp.error is None
    assert resp.result == {"greeting": "hello gleaner"}
    assert resp.duration_ms > 0


def test_custom_entry_point_and_init_env(proxy: ActionProxyClient) -> None:
    source = """
        import os
        def handler(args):
            return {"x": os.environ.get("MY_SETTING")}
    """
    init_source(proxy, source, main="handler", MY_SETTING="42")
    assert run(proxy).result == {"x": "42"}


def test_ow_environment_is_set_for_the_call(proxy: ActionProxyClient) -> None:
    source = """
        import os
        def main(args):
            return {k: os.environ.get(k) for k in (
                "__OW_NAMESPACE", "__OW_ACTION_NAME", "__OW_ACTION_VERSION", "__OW_ACTIVATION_ID",
                "__OW_DEADLINE", "__OW_API_HOST", "__OW_API_KEY")}
    """
    init_source(proxy, source)
    result = run(proxy, api_key="secret", action_version="0.0.3").result
    assert result == {
        "__OW_NAMESPACE": "guest",
        "__OW_ACTION_NAME": "/guest/test",
        "__OW_ACTION_VERSION": "0.0.3",
        "__OW_ACTIVATION_ID": "a1b2c3",
        "__OW_DEADLINE": "1700000000000",
        "__OW_API_HOST": "http://gw:3233",
        "__OW_API_KEY": "secret",
    }
    # The key is not left behind for the next call.
    assert (run(proxy).result or {})["__OW_API_KEY"] is None


def test_the_api_host_comes_from_the_containers_environment_and_the_key_only_per_run() -> None:
    """As in OpenWhisk: __OW_API_HOST is set at container creation (seen at /init too);
    the rest, the key included, only while a run lasts."""
    port = _free_port()
    proc = _start(port, __OW_API_HOST="http://172.30.0.1:3233")
    client = ActionProxyClient("127.0.0.1", port, token=TOKEN)
    source = """
        import os
        AT_INIT = {k: v for k, v in os.environ.items() if k.startswith("__OW_")}
        def main(args):
            return {"init": AT_INIT, "run": {k: v for k, v in os.environ.items() if k.startswith("__OW_")}}
    """
    try:
        client.wait_ready(10)
        init_source(client, source)
        out = run(client, api_host=None, api_key="u:k").result or {}
        assert out["init"] == {"__OW_API_HOST": "http://172.30.0.1:3233"}
        assert out["run"] == {
            "__OW_API_HOST": "http://172.30.0.1:3233",
            "__OW_API_KEY": "u:k",
            "__OW_NAMESPACE": "guest",
            "__OW_ACTION_NAME": "/guest/test",
            "__OW_ACTIVATION_ID": "a1b2c3",
            "__OW_DEADLINE": "1700000000000",
        }
        # A run may override the host; the container's own comes back after it.
        assert (run(client, api_host="http://elsewhere").result or {})["run"][
            "__OW_API_HOST"
        ] == "http://elsewhere"
        after = (run(client, api_host=None).result or {})["run"]
        assert after["__OW_API_HOST"] == "http://172.30.0.1:3233" and "__OW_API_KEY" not in after
    finally:
        client.close()
        _stop(proc)


def test_zip_with_main_module_helpers_and_virtualenv(proxy: ActionProxyClient) -> None:
    code = zip_b64(
        {
            "__main__.py": """
                import helper, vendored
                def main(args):
                    return {"sum": helper.add(args["a"], args["b"]), "vendored": vendored.NAME}
            """,
            "helper.py": "def add(a, b):\n    return a + b\n",
            "virtualenv/lib/python3.11/site-packages/vendored.py": "NAME = 'from-venv'\n",
        }
    )
    proxy.init(name="zipped", main="main", code=code, binary=True, env={})
    assert run(proxy, {"a": 2, "b": 3}).result == {"sum": 5, "vendored": "from-venv"}


def test_exception_gives_error_and_traceback_in_logs(proxy: ActionProxyClient) -> None:
    init_source(proxy, "def main(args):\n    print('before')\n    raise ValueError('boom')\n")
    resp = run(proxy)
    assert not resp.ok and resp.result is None
    assert resp.error == "An error has occurred: ValueError: boom"
    text = "\n".join(resp.logs)
    assert "stdout: before" in text
    assert "stderr: Traceback (most recent call last):" in text
    assert "stderr: ValueError: boom" in text


def test_non_dict_result_is_an_error(proxy: ActionProxyClient) -> None:
    init_source(proxy, "def main(args):\n    return [1, 2, 3]\n")
    resp = run(proxy)
    assert not resp.ok
    assert resp.error == "The action did not return a dictionary."


def test_unserializable_result_is_an_error(proxy: ActionProxyClient) -> None:
    init_source(
        proxy, "def main(args):\n    return {'s': {1, 2}} if args.get('set') else {'nan': float('nan')}\n"
    )
    for args in ({"set": True}, {}):
        resp = run(proxy, args)
        assert not resp.ok and resp.error is not None and "JSON" in resp.error


def test_logs_from_children_threads_and_fds_are_captured(proxy: ActionProxyClient) -> None:
    source = """
        import multiprocessing, os, subprocess, sys, threading
        def child(tag):
            print("from child", tag)
        def square(x):
            return x * x
        def main(args):
            print("from main")
            print("to stderr", file=sys.stderr)
            p = multiprocessing.Process(target=child, args=("mp",))
            p.start(); p.join()
            subprocess.run(["sh", "-c", "echo from shell; echo shell err >&2"], check=True)
            t = threading.Thread(target=print, args=("from thread",)); t.start(); t.join()
            os.write(1, b"raw fd write\\n")
            with multiprocessing.Pool(2) as pool:   # pickles functions of the action's __main__
                squares = pool.map(square, [1, 2, 3])
            sys.stdout.write("no trailing newline")
            return {"squares": squares}
    """
    init_source(proxy, source)
    resp = run(proxy)
    assert resp.ok, resp.error
    assert resp.result == {"squares": [1, 4, 9]}
    assert all(LINE.match(line) for line in resp.logs), resp.logs
    bodies = {line.split(" ", 1)[1] for line in resp.logs}
    assert {
        "stdout: from main",
        "stderr: to stderr",
        "stdout: from child mp",
        "stdout: from shell",
        "stderr: shell err",
        "stdout: from thread",
        "stdout: raw fd write",
        "stdout: no trailing newline",
    } <= bodies


def test_lingering_child_does_not_hold_the_answer(proxy: ActionProxyClient, tmp_path: Path) -> None:
    # The child keeps stdout open until the test lets it end: an answer that waited for
    # the child's output to end would never come, and the run would time out instead.
    let_go = tmp_path / "let-go"
    source = f"""
        import subprocess
        def main(args):
            subprocess.Popen(["sh", "-c", "while [ ! -e '{let_go}' ]; do sleep 0.05; done; echo late"])
            print("done")
            return {{}}
    """
    init_source(proxy, source)
    try:
        resp = run(proxy, timeout_s=20.0)
    finally:
        let_go.touch()
    assert resp.ok, resp.error
    assert [line.split(" ", 1)[1] for line in resp.logs] == ["stdout: done"]


def test_log_limit_truncates_with_openwhisk_note(proxy: ActionProxyClient) -> None:
    init_source(proxy, "def main(args):\n    for i in range(100):\n        print('x' * 99)\n    return {}\n")
    resp = run(proxy, log_limit_bytes=1000)
    assert resp.ok
    assert len(resp.logs) == 11  # 10 lines of 99 bytes fit in 1000, then the note
    assert resp.logs[-1].endswith(
        "stderr: Logs were truncated because the total bytes size exceeds the limit of 1000 bytes."
    )
    assert len(run(proxy).logs) == 100  # the default limit is far away


def test_second_init_is_refused(proxy: ActionProxyClient) -> None:
    init_source(proxy, "def main(args):\n    return {}\n")
    with pytest.raises(InitError) as err:
        init_source(proxy, "def main(args):\n    return {'other': 1}\n")
    assert err.value.status == 403
    assert str(err.value) == "Cannot initialize the action more than once."
    assert run(proxy).result == {}


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("def main(args)\n    return {}\n", "SyntaxError"),
        ("def handler(args):\n    return {}\n", "Action entrypoint 'main' is not a function."),
        ("import no_such_module_anywhere\n", "ModuleNotFoundError"),
    ],
)
def test_bad_source_is_an_init_error(proxy: ActionProxyClient, source: str, fragment: str) -> None:
    with pytest.raises(InitError) as err:
        init_source(proxy, source)
    assert err.value.status == 502
    assert fragment in str(err.value)
    # A failed init can be retried with good code (the container is not poisoned).
    init_source(proxy, "def main(args):\n    return {'ok': True}\n")
    assert run(proxy).result == {"ok": True}


def test_bad_zip_is_an_init_error(proxy: ActionProxyClient) -> None:
    with pytest.raises(InitError, match="Invalid zip file"):
        proxy.init(name="z", main="main", code=base64.b64encode(b"not a zip").decode(), binary=True, env={})
    with pytest.raises(InitError, match=r"__main__\.py"):
        proxy.init(name="z", main="main", code=zip_b64({"other.py": "x = 1\n"}), binary=True, env={})


def test_run_before_init_is_an_error(proxy: ActionProxyClient) -> None:
    resp = run(proxy)
    assert not resp.ok and resp.error == "Cannot invoke an uninitialized action."


def test_keep_alive_across_many_runs(proxy: ActionProxyClient) -> None:
    init_source(proxy, "def main(args):\n    return {'i': args['i']}\n")
    run(proxy, {"i": -1})
    conn = proxy._conn
    assert conn is not None and conn.sock is not None
    sock = conn.sock
    for i in range(300):
        assert run(proxy, {"i": i}).result == {"i": i}
    assert proxy._conn is conn and conn.sock is sock  # one TCP connection for all of them


class _Recorded:
    """A real socket that notes the options set on it and each send."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.options: list[tuple[int, int, int]] = []
        self.sends: list[bytes] = []

    def setsockopt(self, level: int, option: int, value: int) -> None:
        self.options.append((level, option, value))
        self.sock.setsockopt(level, option, value)

    def sendall(self, data: bytes) -> None:
        self.sends.append(bytes(data))
        self.sock.sendall(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


def test_each_response_leaves_in_one_send_on_a_nodelay_socket() -> None:
    """Headers and body sent apart stall ~40 ms a call (Nagle against the client's delayed
    ACK). How long a warm /run takes is measured by
    `gleaner bench invoke` (benchmarks/invoke.py, warm: run_p50)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        conn, _ = server.accept()
        with client:
            client.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n" * 2)  # two on one connection
            client.shutdown(socket.SHUT_WR)
            recorded = _Recorded(conn)
            actionproxy.handle_connection(actionproxy.Action(), recorded, actionproxy.Gate(TOKEN))  # type: ignore[arg-type]
            received = b""
            while chunk := client.recv(65536):
                received += chunk
    assert (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1) in recorded.options
    assert len(recorded.sends) == 2 and received == b"".join(recorded.sends)
    for sent in recorded.sends:  # each send is a whole response: status, headers and body
        head, _, body = sent.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ") and f"Content-Length: {len(body)}".encode() in head
        assert json.loads(body) == {"ok": True}


def test_timeout_raises_timed_out(proxy: ActionProxyClient) -> None:
    init_source(proxy, "import time\ndef main(args):\n    time.sleep(args['s'])\n    return {}\n")
    with pytest.raises(ContainerError) as err:
        run(proxy, {"s": 3}, timeout_s=0.3)
    assert err.value.timed_out


def test_process_death_raises_container_error(proxy: ActionProxyClient) -> None:
    init_source(proxy, "import os\ndef main(args):\n    os._exit(3)\n")
    with pytest.raises(ContainerError) as err:
        run(proxy)
    assert not err.value.timed_out


def test_client_reconnects_after_a_dropped_keep_alive() -> None:
    port = _free_port()
    code = "def main(args):\n    return {'pid': __import__('os').getpid()}\n"
    first = _start(port)
    client = ActionProxyClient("127.0.0.1", port, token=TOKEN)
    try:
        client.wait_ready(10)
        init_source(client, code)
        pid1 = run(client).result
        _stop(first)  # the server goes away under an idle keep-alive connection
        second = _start(port)
        try:
            client.wait_ready(10)
            init_source(client, code)
            pid2 = run(client).result
            assert pid1 != pid2
        finally:
            _stop(second)
    finally:
        client.close()
        if first.poll() is None:
            _stop(first)


def test_wait_ready_times_out_on_a_closed_port() -> None:
    client = ActionProxyClient("127.0.0.1", _free_port())
    with pytest.raises(ContainerError, match=r"not ready after 0\.3s"):
        client.wait_ready(0.3)


def test_a_run_whose_caller_is_gone_ends_the_container_before_the_function_finishes(tmp_path: Path) -> None:
    port = _free_port()
    proc = _start(port)
    marker = tmp_path / "finished"
    client = ActionProxyClient("127.0.0.1", port, token=TOKEN)
    try:
        client.wait_ready(10)
        init_source(
            client,
            f"""
            import time
            def main(args):
                time.sleep(2)
                open({str(marker)!r}, "w").write("ran")
                return {{}}
            """,
        )
        body = json.dumps({"value": {}, "activation_id": "a" * 32}).encode()
        raw = socket.create_connection(("127.0.0.1", port))
        raw.sendall(
            b"POST /run HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {TOKEN}\r\n".encode()
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        time.sleep(0.3)
        raw.close()  # the invoker died mid-run
        assert (
            proc.wait(5) == 70
        )  # the proxy's own exit code for "caller gone" (as PID 1's child: the container's)
        time.sleep(2.2)
        assert not marker.exists()  # the function never finished: a re-run is its only run
    finally:
        client.close()
        if proc.poll() is None:
            _stop(proc)


def test_a_finished_answer_is_kept_for_an_invoker_that_takes_over(proxy: ActionProxyClient) -> None:
    init_source(proxy, "def main(args):\n    return {'n': args['n'] + 1}\n")
    resp = proxy.run(
        args={"n": 1},
        namespace="guest",
        action_name="/guest/f",
        activation_id="b" * 32,
        deadline_ms=0,
        timeout_s=10,
        log_limit_bytes=1000,
    )
    assert resp.ok
    kept = proxy.finished_run("b" * 32)
    assert kept is not None and kept.ok and kept.result == {"n": 2}
    assert proxy.finished_run("c" * 32) is None  # never ran here


# --------------------------------------------------------------------------- only its invoker


def _raw(port: int, method: str, path: str, body: bytes = b"", auth: str | None = None) -> tuple[int, Any]:
    """One request on a fresh socket, as a neighbour without the client would send it."""
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
    if auth is not None:
        head += f"Authorization: {auth}\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head.encode() + b"\r\n" + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, json.loads(data.split(b"\r\n\r\n", 1)[1] or b"null")


@pytest.fixture()
def bare_proxy() -> Iterator[tuple[int, ActionProxyClient]]:
    """A proxy with its invoker's client, for requests the invoker would never send."""
    port = _free_port()
    proc = _start(port)
    client = ActionProxyClient("127.0.0.1", port, token=TOKEN)
    try:
        client.wait_ready(10)
        yield port, client
    finally:
        client.close()
        _stop(proc)


@pytest.mark.parametrize(
    "auth", [None, "", "Bearer", "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x", TOKEN]
)
def test_requests_without_the_token_are_refused(
    bare_proxy: tuple[int, ActionProxyClient], auth: str | None
) -> None:
    port, client = bare_proxy
    init = json.dumps({"value": {"code": "def main(args):\n    return {'evil': 1}\n"}}).encode()
    for method, path, body in (
        ("POST", "/init", init),
        ("POST", "/run", b'{"value": {}}'),
        ("GET", "/result/" + "a" * 32, b""),
        ("POST", "/nowhere", b""),
    ):
        status, payload = _raw(port, method, path, body, auth)
        assert status == 403, (method, path, payload)
        assert payload == {"error": actionproxy.UNAUTHORIZED}
    # Nothing of that reached the action: the invoker's own init still works.
    init_source(client, "def main(args):\n    return {'mine': 1}\n")
    assert run(client).result == {"mine": 1}


def test_ping_needs_no_token(bare_proxy: tuple[int, ActionProxyClient]) -> None:
    port, _ = bare_proxy
    assert _raw(port, "GET", "/ping") == (200, {"ok": True})


def test_a_proxy_started_without_a_token_answers_nobody() -> None:
    port = _free_port()
    proc = _start(port, token=None)
    client = ActionProxyClient("127.0.0.1", port, token="")
    try:
        client.wait_ready(10)
        with pytest.raises(InitError) as err:
            init_source(client, "def main(args):\n    return {}\n")
        assert err.value.status == 403
        assert _raw(port, "POST", "/run", b"{}", "Bearer ")[0] == 403
    finally:
        client.close()
        _stop(proc)


def test_a_second_init_with_the_token_is_refused_too(bare_proxy: tuple[int, ActionProxyClient]) -> None:
    port, client = bare_proxy
    init_source(client, "def main(args):\n    return {'first': 1}\n")
    body = json.dumps({"value": {"code": "def main(args):\n    return {'second': 1}\n"}}).encode()
    status, payload = _raw(port, "POST", "/init", body, f"Bearer {TOKEN}")
    assert (status, payload) == (403, {"error": "Cannot initialize the action more than once."})
    assert run(client).result == {"first": 1}


def test_the_function_cannot_read_the_token(proxy: ActionProxyClient) -> None:
    source = f"""
        import gc, os, subprocess
        TOKEN = {TOKEN[:10]!r} + {TOKEN[10:]!r}  # not one literal: the search must not find itself
        def main(args):
            seen = []
            if any(TOKEN in v for v in os.environ.values()) or {PROXY_TOKEN_ENV!r} in os.environ:
                seen.append("os.environ")
            for pid in ("self", str(os.getppid())):
                try:
                    if TOKEN.encode() in open(f"/proc/{{pid}}/environ", "rb").read():
                        seen.append(f"/proc/{{pid}}/environ")
                except OSError:
                    pass
            if TOKEN in subprocess.run(["env"], capture_output=True, text=True).stdout:
                seen.append("a child's environment")
            for obj in gc.get_objects():
                if isinstance(obj, dict) and any(isinstance(v, str) and TOKEN in v for v in obj.values()):
                    if obj is not globals():
                        seen.append("an object of the proxy")
                        break
            return {{"seen": seen}}
    """
    init_source(proxy, source)
    assert run(proxy).result == {"seen": []}


def test_gate_compares_bearer_tokens_only() -> None:
    gate = actionproxy.Gate("s3cret")
    assert gate.allows("Bearer s3cret") and gate.allows("bearer  s3cret")
    for refused in ("", "Bearer", "Bearer s3cre", "Bearer s3cret2", "Basic s3cret", "s3cret"):
        assert not gate.allows(refused), refused
    assert not actionproxy.Gate(None).allows("Bearer ")
    assert not actionproxy.Gate("").allows("Bearer ")
    assert "s3cret" not in repr(vars(gate) if hasattr(gate, "__dict__") else gate.digest)


def test_take_token_removes_it_from_the_environment() -> None:
    env = {PROXY_TOKEN_ENV: "abc", "OTHER": "1"}
    assert actionproxy.take_token(env) == "abc"
    assert env == {"OTHER": "1"}
    assert actionproxy.take_token(env) is None
    assert actionproxy.TOKEN_ENV == PROXY_TOKEN_ENV  # the proxy is standalone: one name, kept in step


def test_relative_writes_land_in_the_actions_own_directory(proxy: ActionProxyClient) -> None:
    source = """
        import os, tempfile
        def main(args):
            open("scratch.txt", "w").write("x")
            return {"cwd": os.getcwd(), "tmp": tempfile.gettempdir()}
    """
    init_source(proxy, source)
    result = run(proxy).result or {}
    assert os.path.basename(result["cwd"]).startswith("action-")
    assert result["cwd"].startswith(result["tmp"])
