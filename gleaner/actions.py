"""Actions: validation of what a user registers, and its OpenWhisk shapes. Pure.

CPU and memory are both first-class. OpenWhisk has no CPU limit, so Gleaner
reads ``limits.cpu`` as an extension; a client that can only send
``limits.memory`` may use the thesis's encoding ``(cpu - 1) * base + memory``
(base = ``encoding_base_mb``, 8192 MB): any ``memory`` above the largest
allowed memory with no ``cpu`` given is decoded that way.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import zipfile
from dataclasses import dataclass
from typing import Any

from gleaner.errors import BadRequest, InvalidLimits
from gleaner.settings_sections import LimitsSettings

# Every kind maps to the runtime image family that runs it.
KINDS = {"python:3": "python:3", "python:3.11": "python:3", "python:default": "python:3"}
DEFAULT_KIND = "python:3"
MAX_CODE_BYTES = 48 * 2**20  # OpenWhisk's action size limit
# OpenWhisk's entity name rule (ASCII, as Java's \w): the one rule for REST and Kafka alike.
_ENTITY_NAME = re.compile(r"^(\w|\w[\w@ .\-]*[\w@.\-]+)$", re.ASCII)


def is_entity_name(name: str) -> bool:
    return len(name) <= 256 and _ENTITY_NAME.match(name) is not None


def check_name(name: str, what: str = "name") -> str:
    if not is_entity_name(name):
        raise BadRequest(
            f"The {what} '{name}' is not valid (ASCII letters, digits, _ @ . - and spaces; max 256)."
        )
    return name


@dataclass(frozen=True, slots=True)
class Limits:
    cpu: float
    memory_mb: int
    timeout_ms: int
    logs_mb: int

    def to_json(self) -> dict[str, Any]:
        return {
            "timeout": self.timeout_ms,
            "memory": self.memory_mb,
            "cpu": self.cpu,
            "logs": self.logs_mb,
            "concurrency": 1,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Limits:
        return cls(
            cpu=float(data["cpu"]),
            memory_mb=int(data["memory"]),
            timeout_ms=int(data["timeout"]),
            logs_mb=int(data.get("logs", 10)),
        )


def decode_memory(encoded: int, base_mb: int) -> tuple[float, int]:
    """Inverse of the thesis's ``(cpu - 1) * base + memory`` (memory in 1..base)."""
    cpu = (encoded - 1) // base_mb + 1
    return float(cpu), encoded - (cpu - 1) * base_mb


def _number(raw: dict[str, Any], key: str, kind: type) -> Any:
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidLimits(f"limits.{key} must be a number, got {value!r}")
    if kind is int and value != int(value):
        raise InvalidLimits(f"limits.{key} must be a whole number, got {value!r}")
    return kind(value)


def resolve_limits(raw: Any, settings: LimitsSettings, current: Limits | None = None) -> Limits:
    """Limits from a request body, defaults (or the current ones on update) filling gaps."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InvalidLimits("limits must be a JSON object")
    base = current or Limits(
        settings.default_cpu,
        settings.default_memory_mb,
        settings.default_timeout_ms,
        settings.default_log_limit_mb,
    )
    cpu = _number(raw, "cpu", float) if raw.get("cpu") is not None else None
    memory = _number(raw, "memory", int) if raw.get("memory") is not None else None
    if memory is not None and cpu is None and memory > settings.memory_max_mb:
        cpu, memory = decode_memory(memory, settings.encoding_base_mb)
    limits = Limits(
        cpu=base.cpu if cpu is None else cpu,
        memory_mb=base.memory_mb if memory is None else memory,
        timeout_ms=_number(raw, "timeout", int) if raw.get("timeout") is not None else base.timeout_ms,
        logs_mb=_number(raw, "logs", int) if raw.get("logs") is not None else base.logs_mb,
    )
    check_limits(limits, settings)
    return limits


def check_limits(limits: Limits, settings: LimitsSettings) -> None:
    if not settings.cpu_min <= limits.cpu <= settings.cpu_max:
        raise InvalidLimits(
            f"cpu limit {limits.cpu} exceeds allowed threshold: allowed range is "
            f"[{settings.cpu_min}, {settings.cpu_max}] cores"
        )
    if not settings.memory_min_mb <= limits.memory_mb <= settings.memory_max_mb:
        raise InvalidLimits(
            f"memory limit {limits.memory_mb} MB exceeds allowed threshold: allowed range is "
            f"[{settings.memory_min_mb}, {settings.memory_max_mb}] MB"
        )
    if not settings.timeout_min_ms <= limits.timeout_ms <= settings.timeout_max_ms:
        raise InvalidLimits(
            f"timeout {limits.timeout_ms} ms exceeds allowed threshold: allowed range is "
            f"[{settings.timeout_min_ms}, {settings.timeout_max_ms}] ms"
        )
    if not 0 <= limits.logs_mb <= 10:
        raise InvalidLimits(f"log limit {limits.logs_mb} MB exceeds allowed range [0, 10] MB")


def _key_values(raw: Any, what: str) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(
        isinstance(p, dict) and isinstance(p.get("key"), str) for p in raw
    ):
        raise BadRequest(f'{what} must be a list of {{"key": ..., "value": ...}} objects')
    return [{"key": p["key"], "value": p.get("value")} for p in raw]


def _check_exec(exec_: Any) -> dict[str, Any]:
    if not isinstance(exec_, dict):
        raise BadRequest("exec must be a JSON object with kind and code")
    kind = exec_.get("kind", DEFAULT_KIND)
    if not isinstance(kind, str) or kind not in KINDS:  # a list or object is unhashable
        raise BadRequest(f"kind '{kind}' is not supported (supported: {', '.join(sorted(KINDS))})")
    code = exec_.get("code")
    if not isinstance(code, str) or not code:
        raise BadRequest("exec.code must be a non-empty string")
    if len(code) > MAX_CODE_BYTES:
        raise BadRequest(f"exec.code is {len(code)} bytes, above the {MAX_CODE_BYTES} byte limit")
    main = exec_.get("main") or "main"
    if not isinstance(main, str) or not main.isidentifier():
        raise BadRequest(f"exec.main must be a Python identifier, got {main!r}")
    binary = exec_.get("binary")
    binary = _looks_like_zip(code) if binary is None else bool(binary)
    if binary:
        _check_zip(code)
    return {"kind": kind, "code": code, "binary": binary, "main": main}


def _looks_like_zip(code: str) -> bool:
    return code.startswith("UEsDB")  # base64 of a zip's "PK\x03\x04"


def _check_zip(code: str) -> None:
    try:
        data = base64.b64decode(code, validate=True)
        names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    except (binascii.Error, ValueError, zipfile.BadZipFile) as exc:
        raise BadRequest(f"exec.code is marked binary but is not a base64 zip archive: {exc}") from exc
    if "__main__.py" not in names:
        raise BadRequest("the zip archive must contain __main__.py at its root")


def bump_version(version: str) -> str:
    parts = [*version.split("."), "0", "0", "0"][:3]
    try:
        return f"{parts[0]}.{parts[1]}.{int(parts[2]) + 1}"
    except ValueError:
        return "0.0.1"


def action_doc(
    namespace: str,
    name: str,
    body: Any,
    settings: LimitsSettings,
    existing: dict[str, Any] | None,
    now_ms: int,
) -> dict[str, Any]:
    """The CouchDB document for a PUT (create or overwrite) of an action."""
    check_name(name, "action name")
    if not isinstance(body, dict):
        raise BadRequest("The request content was malformed: expected a JSON object.")
    current = Limits.from_json(existing["limits"]) if existing else None
    if "exec" in body:
        exec_ = _check_exec(body["exec"])
    elif existing:
        exec_ = existing["exec"]
    else:
        raise BadRequest("exec undefined: an action needs exec.kind and exec.code")
    doc: dict[str, Any] = {
        "_id": f"{namespace}/{name}",
        "entityType": "action",
        "namespace": namespace,
        "name": name,
        "version": bump_version(existing["version"]) if existing else "0.0.1",
        "exec": exec_,
        "limits": resolve_limits(body.get("limits"), settings, current).to_json(),
        "parameters": _key_values(body.get("parameters"), "parameters")
        if "parameters" in body or not existing
        else existing["parameters"],
        "annotations": _key_values(body.get("annotations"), "annotations")
        if "annotations" in body or not existing
        else existing["annotations"],
        "publish": bool(body.get("publish", existing.get("publish", False) if existing else False)),
        "updated": now_ms,
    }
    if existing:
        doc["_rev"] = existing["_rev"]
    return doc


def action_view(doc: dict[str, Any], *, code: bool = True) -> dict[str, Any]:
    """What OpenWhisk's API answers for an action."""
    exec_ = {k: v for k, v in doc["exec"].items() if code or k != "code"}
    annotations = [a for a in doc.get("annotations", []) if a["key"] != "exec"]
    annotations.append({"key": "exec", "value": doc["exec"]["kind"]})
    return {
        "namespace": doc["namespace"],
        "name": doc["name"],
        "version": doc["version"],
        "exec": exec_,
        "limits": doc["limits"],
        "parameters": doc.get("parameters", []),
        "annotations": annotations,
        "publish": doc.get("publish", False),
        "updated": doc.get("updated", 0),
    }


def merged_params(doc: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Default parameters of the action, overridden by the invocation's."""
    out = {p["key"]: p["value"] for p in doc.get("parameters", [])}
    out.update(params)
    return out
