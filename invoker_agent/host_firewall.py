"""Keep functions off this host: an iptables chain on the action network's bridge.

Everything the platform runs on this machine (Kafka, Redis, CouchDB, the gateway,
dockerd, anything else listening) is reached from a container through the bridge's
own address, i.e. the host's INPUT chain with the bridge as in-interface. One jump
from INPUT sends such traffic to :data:`CHAIN`, which lets through only answers to
connections the host opened (the invoker's calls to each container's proxy) and
lets through new connections to the ports the platform opens to functions on purpose
(the gateway's, so an action can call the platform with its ``__OW_API_KEY``), and
rejects the rest at once (a TCP reset: a function gets "connection refused", not a
hang). Traffic between containers is Docker's ``enable_icc=false``; traffic out to
other machines (FORWARD) is the ``action_outbound`` setting's.

:data:`ALLOW_CHAIN` is never flushed: it holds deliberate exceptions (a test harness
that counts runs on a host port, see :func:`allow_port`), and survives invoker restarts.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence

from gleaner.errors import DockerError

CHAIN = "GLEANER-ACTIONS"
ALLOW_CHAIN = "GLEANER-ACTIONS-ALLOW"
_TIMEOUT_S = 30.0


def chain_rules(open_ports: Sequence[int] = ()) -> list[list[str]]:
    """The rules of :data:`CHAIN`, in order (arguments after ``-A CHAIN``); ``open_ports``
    are TCP ports of this host that functions may connect to (the gateway's)."""
    return [
        ["-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "RETURN"],
        *(["-p", "tcp", "--dport", str(int(port)), "-j", "RETURN"] for port in sorted(set(open_ports))),
        ["-j", ALLOW_CHAIN],
        ["-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"],
        ["-j", "REJECT", "--reject-with", "icmp-port-unreachable"],
    ]


def restore_text(open_ports: Sequence[int] = ()) -> str:
    """``iptables-restore --noflush`` input that (re)defines :data:`CHAIN` in one commit:
    declaring a chain flushes it, so a re-install never leaves it empty or doubled."""
    lines = ["*filter", f":{CHAIN} - [0:0]"]
    lines += [" ".join(["-A", CHAIN, *rule]) for rule in chain_rules(open_ports)]
    lines += ["COMMIT", ""]
    return "\n".join(lines)


def input_jump(bridge: str) -> list[str]:
    """The INPUT rule (after ``-I``/``-C``/``-D INPUT``) sending the bridge's traffic to the chain."""
    return ["-i", bridge, "-j", CHAIN]


def allow_rule(port: int, proto: str = "tcp") -> list[str]:
    return ["-p", proto, "--dport", str(int(port)), "-j", "ACCEPT"]


class HostFirewall:
    def __init__(self, iptables: str | None = None) -> None:
        self.iptables = iptables or _which("iptables")
        self.restore = _which("iptables-restore") if iptables is None else f"{iptables}-restore"

    def install(self, bridge: str, open_ports: Sequence[int] = ()) -> None:
        """Reject traffic from ``bridge`` to this host but for new TCP connections to
        ``open_ports`` (idempotent; several invokers may race)."""
        self._ensure_chain(ALLOW_CHAIN)
        self._run([self.restore, "-w", "--noflush"], stdin=restore_text(open_ports))
        if not self._ok(["-C", "INPUT", *input_jump(bridge)]):
            self._run([self.iptables, "-w", "-I", "INPUT", "1", *input_jump(bridge)])

    def uninstall(self, bridge: str) -> None:
        """Drop the INPUT jump of one bridge (its network is gone); the chains stay."""
        while self._ok(["-C", "INPUT", *input_jump(bridge)]):
            self._run([self.iptables, "-w", "-D", "INPUT", *input_jump(bridge)])

    def installed(self, bridge: str) -> bool:
        return self._ok(["-C", "INPUT", *input_jump(bridge)])

    def allow_port(self, port: int, proto: str = "tcp") -> None:
        """Let functions reach one port of this host (a test harness's listener)."""
        self._ensure_chain(ALLOW_CHAIN)
        if not self._ok(["-C", ALLOW_CHAIN, *allow_rule(port, proto)]):
            self._run([self.iptables, "-w", "-A", ALLOW_CHAIN, *allow_rule(port, proto)])

    def revoke_port(self, port: int, proto: str = "tcp") -> None:
        while self._ok(["-C", ALLOW_CHAIN, *allow_rule(port, proto)]):
            self._run([self.iptables, "-w", "-D", ALLOW_CHAIN, *allow_rule(port, proto)])

    def _ensure_chain(self, chain: str) -> None:
        if not self._ok(["-n", "-L", chain]):
            proc = self._call([self.iptables, "-w", "-N", chain])
            if proc.returncode != 0 and "exists" not in proc.stderr:
                raise DockerError(f"iptables -N {chain} failed: {proc.stderr.strip()}")

    def _ok(self, args: Sequence[str]) -> bool:
        return self._call([self.iptables, "-w", *args]).returncode == 0

    def _run(self, argv: list[str], stdin: str | None = None) -> None:
        proc = self._call(argv, stdin)
        if proc.returncode != 0:
            raise DockerError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")

    @staticmethod
    def _call(argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DockerError(f"cannot run {argv[0]}: {exc}") from exc


def _which(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if found is None:
        raise DockerError(
            f"{name} not found: the host firewall for action containers needs it "
            "(or set GLEANER_ACTION_HOST_FIREWALL=false and keep host services off the bridge)"
        )
    return found
