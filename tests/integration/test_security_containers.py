"""Hardened action containers on the real stack, each test written as the attacker.

A function of the test namespace tries what a hostile tenant would: a fork bomb, a
disk filler, connections to the platform's stores, the gateway, dockerd and a
neighbour's action proxy, reading its proxy's secret, privileges it should not have.
Every attempt fails inside its own container and the platform stays up. Every
connection attempt from inside a function has a 1 s timeout.
"""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import subprocess
import textwrap
import threading
from collections.abc import Iterator
from typing import Any

import docker
import pytest

from gleaner.gateway_client import OpenWhiskClient
from gleaner.settings import Settings
from invoker_agent.docker_engine import ACTION_USER, bridge_of, token_in
from invoker_agent.host_firewall import HostFirewall

pytestmark = pytest.mark.integration

FORK_BOMB = 5_000
DISK_FILL_MB = 2_048


def deploy(ow: OpenWhiskClient, name: str, code: str, memory: int = 256, timeout: int = 60_000) -> None:
    body = {
        "exec": {"kind": "python:3", "code": textwrap.dedent(code)},
        "limits": {"cpu": 0.5, "memory": memory, "timeout": timeout},
    }
    ow.put_action(name, body, overwrite=True)


def call(ow: OpenWhiskClient, name: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The activation record of a blocking invoke that succeeded."""
    status, record = ow.invoke(name, params or {}, blocking=True, result=False)
    assert status == 200 and record["response"]["statusCode"] == 0, (record["response"], record.get("logs"))
    return record  # type: ignore[no-any-return]


def result(ow: OpenWhiskClient, name: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    return call(ow, name, params)["response"]["result"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def dockerc(stack_up: Settings) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=stack_up.docker_host) if stack_up.docker_host else docker.from_env()
    yield client
    client.close()


def container_of(dockerc: docker.DockerClient, record: dict[str, Any]) -> dict[str, Any]:
    attrs: dict[str, Any] = dockerc.api.inspect_container(record["gleaner"]["container"])
    return attrs


def platform_is_up(ow: OpenWhiskClient, unique: str) -> None:
    """After an attack: a fresh function in a fresh container still runs."""
    name = f"sec-canary-{unique}"
    deploy(ow, name, "def main(args):\n    return {'alive': True}\n", memory=128)
    assert result(ow, name) == {"alive": True}


# --------------------------------------------------------------------------- fork bomb

FORK_BOMB_CODE = """
import os, signal

def main(args):
    children, refused = [], None
    try:
        for _ in range(args["n"]):
            pid = os.fork()
            if pid == 0:  # a child: sleep a while, at next to no memory
                try:
                    os.execv("/bin/sleep", ["sleep", "20"])
                finally:
                    os._exit(0)
            children.append(pid)
    except OSError as exc:
        refused = f"{type(exc).__name__}: {exc}"
    for pid in children:
        os.kill(pid, signal.SIGKILL)
    for pid in children:
        os.waitpid(pid, 0)
    return {"spawned": len(children), "refused": refused}
"""


def test_a_fork_bomb_fails_inside_its_own_container(ow, dockerc, stack_up: Settings, unique) -> None:
    name = f"sec-forkbomb-{unique}"
    deploy(ow, name, FORK_BOMB_CODE, memory=512)
    record = call(ow, name, {"n": FORK_BOMB})
    out = record["response"]["result"]
    print("fork bomb:", out)
    assert out["spawned"] < stack_up.container_pids_limit < FORK_BOMB, out
    assert out["refused"] and "Resource temporarily unavailable" in out["refused"], out
    assert container_of(dockerc, record)["HostConfig"]["PidsLimit"] == stack_up.container_pids_limit
    # This host still forks, and the platform still runs functions.
    assert subprocess.run(["true"], check=False).returncode == 0
    platform_is_up(ow, unique)


# --------------------------------------------------------------------------- disk filler

DISK_FILLER_CODE = """
import errno, os

def fill(path, limit_mb):
    written, error = 0, None
    block = b"x" * 2**20
    try:
        with open(path, "wb") as fh:
            while written < limit_mb:
                fh.write(block)
                fh.flush()
                written += 1
    except OSError as exc:
        error = errno.errorcode.get(exc.errno, str(exc.errno))
    try:
        os.remove(path)
    except OSError:
        pass
    return {"mb": written, "error": error}

def main(args):
    places = ["/tmp/fill", "/fill", "/action/fill", "/var/tmp/fill", "/etc/fill", "/usr/fill",
              "/dev/shm/fill", "/etc/hosts.fill", os.path.expanduser("~/fill")]
    return {place: fill(place, args["mb"]) for place in places}
"""


def test_a_disk_filler_stops_at_the_tmpfs_and_never_reaches_the_host_disk(
    ow, dockerc, stack_up: Settings, unique
) -> None:
    name = f"sec-diskfill-{unique}"
    deploy(ow, name, DISK_FILLER_CODE, memory=512)
    root = dockerc.info().get("DockerRootDir") or "/var/lib/docker"
    free_before = shutil.disk_usage(root).free
    record = call(ow, name, {"mb": DISK_FILL_MB})
    out = record["response"]["result"]
    free_after = shutil.disk_usage(root).free
    print("disk filler:", out, f"host disk free before/after: {free_before >> 20} / {free_after >> 20} MB")
    tmpfs = stack_up.container_tmpfs_mb
    assert out["/tmp/fill"]["error"] == "ENOSPC" and out["/tmp/fill"]["mb"] <= tmpfs, out
    for place in ("/fill", "/action/fill", "/var/tmp/fill", "/etc/fill", "/usr/fill", "/etc/hosts.fill"):
        assert out[place] == {"mb": 0, "error": out[place]["error"]}, (place, out[place])
        assert out[place]["error"] in ("EROFS", "EACCES"), (place, out[place])
    assert out["/dev/shm/fill"]["error"] == "ENOSPC" and out["/dev/shm/fill"]["mb"] <= 64  # Docker's shm size
    total = sum(v["mb"] for v in out.values())
    assert total < DISK_FILL_MB / 8, out
    # Nothing of it landed on the host's disk (a 2 GB filler would show; other writers are small).
    assert free_before - free_after < 512 * 2**20
    attrs = container_of(dockerc, record)
    assert attrs["HostConfig"]["ReadonlyRootfs"] is True
    assert f"size={tmpfs}m" in attrs["HostConfig"]["Tmpfs"]["/tmp"]
    platform_is_up(ow, unique)


# --------------------------------------------------------------------------- privileges

PRIVILEGES_CODE = """
import os, socket

def main(args):
    status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines()
                  if ":\\t" in line)
    tries = {}
    def attempt(what, fn):
        try:
            fn()
            tries[what] = "allowed"
        except OSError as exc:
            tries[what] = type(exc).__name__
    attempt("raw socket", lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
    attempt("setuid 0", lambda: os.setuid(0))
    attempt("chown", lambda: os.chown("/tmp", 0, 0))
    attempt("mknod", lambda: os.mknod("/tmp/dev", 0o600 | 0o060000, os.makedev(8, 0)))
    return {
        "uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(),
        "CapEff": status["CapEff"].strip(), "CapPrm": status["CapPrm"].strip(),
        "CapBnd": status["CapBnd"].strip(), "CapAmb": status["CapAmb"].strip(),
        "NoNewPrivs": status["NoNewPrivs"].strip(),
        "tries": tries,
        "home": os.environ.get("HOME"), "tmpdir": os.environ.get("TMPDIR"),
        "cwd_writable": os.access(os.getcwd(), os.W_OK),
    }
"""


def test_functions_run_unprivileged(ow, dockerc, unique) -> None:
    name = f"sec-privs-{unique}"
    deploy(ow, name, PRIVILEGES_CODE)
    record = call(ow, name)
    out = record["response"]["result"]
    print("privileges:", out)
    uid, gid = (int(x) for x in ACTION_USER.split(":"))
    assert (out["uid"], out["euid"], out["gid"]) == (uid, uid, gid), out
    for cap in ("CapEff", "CapPrm", "CapBnd", "CapAmb"):
        assert int(out[cap], 16) == 0, (cap, out[cap])
    assert out["NoNewPrivs"] == "1"
    assert set(out["tries"].values()) == {"PermissionError"}, out["tries"]
    assert (out["home"], out["tmpdir"], out["cwd_writable"]) == ("/tmp", "/tmp", True)
    host = container_of(dockerc, record)["HostConfig"]
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["Privileged"] is False and not host["Binds"]
    # Memory plus swap equals memory: no swap to spill into.
    assert host["Memory"] == host["MemorySwap"] == 256 * 2**20


# --------------------------------------------------------------------------- the network

PROBE_CODE = """
import os, socket, struct

def gateway():
    for line in open("/proc/net/route").read().splitlines()[1:]:
        fields = line.split()
        if fields[1] == "00000000":
            return socket.inet_ntoa(struct.pack("<L", int(fields[2], 16)))
    return None

def attempt(host, port):
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return "connected"
    except OSError as exc:
        return type(exc).__name__

def attempt_unix(path):
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(1.0)
            s.connect(path)
            return "connected"
    except OSError as exc:
        return type(exc).__name__

def main(args):
    hosts = [h for h in [gateway(), *args.get("hosts", [])] if h]
    out = {f"{h}:{p}": attempt(h, p) for h in hosts for p in args.get("ports", [])}
    for path in ("/var/run/docker.sock", "/run/docker.sock"):
        out[path] = attempt_unix(path)
    ip = socket.gethostbyname(socket.gethostname())
    return {"gateway": gateway(), "ip": ip, "attempts": out}
"""


def _host_addresses() -> list[str]:
    """Every IPv4 address of this host (bridges included), loopback aside."""
    out = subprocess.run(
        ["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=True
    ).stdout
    return [
        line.split()[3].split("/")[0] for line in out.splitlines() if not line.split()[3].startswith("127.")
    ]


def _platform_ports(settings: Settings) -> list[int]:
    from urllib.parse import urlsplit

    # Not the gateway's: functions call the platform there with their __OW_API_KEY (on purpose,
    # tests/integration/test_action_env.py).
    ports = {9092, 6379, 5984, 2375, 2376}
    ports |= {int(b.rsplit(":", 1)[1]) for b in settings.kafka_bootstrap.split(",") if ":" in b}
    ports |= {urlsplit(settings.redis_url).port or 6379, urlsplit(settings.couchdb_url).port or 5984}
    return sorted(ports)


@pytest.fixture()
def host_listener() -> Iterator[int]:
    """A listener on every address of this host, as a stand-in for anything else the host runs."""
    server = socket.create_server(("0.0.0.0", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                conn.close()
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join(2)
    server.close()


def test_a_function_reaches_nothing_on_this_host(ow, stack_up: Settings, unique, host_listener: int) -> None:
    name = f"sec-probe-{unique}"
    deploy(ow, name, PROBE_CODE)
    ports = [*_platform_ports(stack_up), host_listener]
    params = {"hosts": _host_addresses(), "ports": ports}
    out = result(ow, name, params)
    assert out["gateway"], out
    attempts = out["attempts"]
    print("host probe:", out)
    assert attempts and "connected" not in attempts.values(), {
        k: v for k, v in attempts.items() if v == "connected"
    }
    gw = out["gateway"]
    assert attempts[f"{gw}:{host_listener}"] == "ConnectionRefusedError"  # rejected at once, not hung
    # dockerd's socket is not in the container at all.
    assert attempts["/var/run/docker.sock"] == attempts["/run/docker.sock"] == "FileNotFoundError"

    # The probe can tell a reachable port: open the test's listener to functions, and it connects.
    firewall = HostFirewall()
    firewall.allow_port(host_listener)
    try:
        again = result(ow, name, {"hosts": [], "ports": [host_listener]})["attempts"]
    finally:
        firewall.revoke_port(host_listener)
    assert again[f"{gw}:{host_listener}"] == "connected", again
    # The one port open to functions without a test's say-so: the gateway's (OpenWhisk's __OW_API_HOST).
    opened = result(ow, name, {"hosts": [], "ports": [stack_up.gateway_port]})["attempts"]
    assert opened[f"{gw}:{stack_up.gateway_port}"] == "connected", opened
    # The gateway still answers its clients on this host.
    assert ow.request("GET", "/actions")[0] == 200


VICTIM_CODE = """
import socket
SECRET = "victim-secret-{unique}"

def main(args):
    return {"secret": SECRET, "ip": socket.gethostbyname(socket.gethostname())}
"""

NEIGHBOUR_CODE = """
import json, socket

def post(host, path, body, timeout=1.0):
    data = json.dumps(body).encode()
    try:
        with socket.create_connection((host, 8080), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(f"POST {path} HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: {len(data)}\\r\\n"
                      "Connection: close\\r\\n\\r\\n".encode() + data)
            return "answered: " + s.recv(65536).decode(errors="replace")[:200]
    except OSError as exc:
        return type(exc).__name__

def main(args):
    ip = args["victim"]
    return {
        "run": post(ip, "/run", {"value": {}}),
        "init": post(ip, "/init", {"value": {"code": "def main(a):\\n    return {'owned': 1}\\n"}}),
        "ping": post(ip, "/ping", {}),
    }
"""


def _proxy_request(
    ip: str, method: str, path: str, body: dict[str, Any], token: str | None
) -> tuple[int, Any]:
    conn = http.client.HTTPConnection(ip, 8080, timeout=5)
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=json.dumps(body), headers=headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()


def test_a_neighbours_container_is_out_of_reach(ow, dockerc, stack_up: Settings, unique) -> None:
    victim, attacker = f"sec-victim-{unique}", f"sec-neighbour-{unique}"
    deploy(ow, victim, VICTIM_CODE.replace("{unique}", unique))
    deploy(ow, attacker, NEIGHBOUR_CODE)
    first = call(ow, victim)  # a warm victim container, waiting for its next call
    vic = first["response"]["result"]
    attrs = container_of(dockerc, first)
    networks = attrs["NetworkSettings"]["Networks"]
    assert list(networks) == [stack_up.container_network]
    victim_ip = networks[stack_up.container_network]["IPAddress"]
    assert vic["ip"] == victim_ip

    out = result(ow, attacker, {"victim": victim_ip})
    print("neighbour:", out)
    assert not any(v.startswith("answered") for v in out.values()), out  # not even /ping

    # From this host, without the victim's token (as any other local user would try): 403.
    for path, body in (
        ("/run", {"value": {}}),
        ("/init", {"value": {"code": "def main(a):\n    return {}\n"}}),
    ):
        status, payload = _proxy_request(victim_ip, "POST", path, body, token=None)
        assert status == 403, payload
        status, payload = _proxy_request(victim_ip, "POST", path, body, token="guessed")
        assert status == 403, payload
    assert _proxy_request(victim_ip, "GET", "/result/" + first["activationId"], {}, None)[0] == 403
    # Even its own invoker's token cannot load other code into it.
    token = token_in(attrs["Config"]["Env"])
    status, payload = _proxy_request(
        victim_ip, "POST", "/init", {"value": {"code": "def main(a):\n    return {}\n"}}, token
    )
    assert (status, payload) == (403, {"error": "Cannot initialize the action more than once."})

    # The victim is untouched: same container, same code, same secret.
    again = call(ow, victim)
    assert again["gleaner"]["container"] == first["gleaner"]["container"]
    assert again["response"]["result"]["secret"] == f"victim-secret-{unique}"


TOKEN_HUNT_CODE = """
import os, re

# What a proxy token looks like (secrets.token_urlsafe(32)): every such string in sight.
LOOKS_LIKE_A_TOKEN = re.compile(rb"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])")

def main(args):
    seen, looked = set(), []
    def scan(where, data):
        looked.append(where)
        seen.update(m.decode() for m in LOOKS_LIKE_A_TOKEN.findall(data))
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            for what in ("environ", "cmdline"):
                try:
                    scan(f"/proc/{pid}/{what}", open(f"/proc/{pid}/{what}", "rb").read())
                except OSError:
                    pass
    scan("os.environ", repr(dict(os.environ)).encode())
    for root in ("/tmp", "/action", "/run", "/etc", "/proc/self/cwd"):
        for base, _, names in os.walk(root):
            for n in names:
                try:
                    scan(os.path.join(base, n), open(os.path.join(base, n), "rb").read(1 << 20))
                except OSError:
                    pass
    return {"candidates": sorted(seen), "read_pid1": "/proc/1/environ" in looked, "files": len(looked)}
"""


def test_a_function_cannot_read_its_proxys_token(ow, dockerc, unique) -> None:
    name = f"sec-tokenhunt-{unique}"
    deploy(ow, name, TOKEN_HUNT_CODE)
    record = call(ow, name)
    token = token_in(container_of(dockerc, record)["Config"]["Env"])
    assert len(token) == 43
    out = record["response"]["result"]
    assert out["read_pid1"] and out["files"] > 20, out  # the proxy's init, PID 1, was read
    assert token not in out["candidates"], "the proxy token is readable from inside the function"
    # The hunt did see where the token was: its place in PID 1's environment, overwritten.
    assert "x" * len(token) in out["candidates"]


def test_the_actions_network_isolates_and_is_firewalled(dockerc, stack_up: Settings) -> None:
    net = dockerc.api.inspect_network(stack_up.container_network)
    assert net["Options"]["com.docker.network.bridge.enable_icc"] == "false"
    assert net["Internal"] is (not stack_up.action_outbound)
    assert HostFirewall().installed(bridge_of(net))
