"""Activation records: OpenWhisk's shape plus Gleaner's own keys. Pure.

OpenWhisk tooling reads ``activationId``, ``namespace``, ``name``, ``start``,
``end``, ``duration``, ``response``, ``logs`` and ``annotations``; everything
Gleaner adds (allocation and its origin, predicted and measured peaks, usage
trajectory, invoker, composition, input size) sits under the ``gleaner`` key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SUCCESS, APPLICATION_ERROR, DEVELOPER_ERROR, INTERNAL_ERROR = 0, 1, 2, 3
STATUS_TEXT = {
    SUCCESS: "success",
    APPLICATION_ERROR: "application error",
    DEVELOPER_ERROR: "action developer error",
    INTERNAL_ERROR: "whisk internal error",
}

# Fields OpenWhisk returns for each entry of an activation list (no result, no logs).
SUMMARY_FIELDS = (
    "activationId",
    "namespace",
    "name",
    "version",
    "start",
    "end",
    "duration",
    "statusCode",
    "annotations",
    "publish",
)


def status_of(result: dict[str, Any] | None, error: str | None) -> int:
    """OpenWhisk's rule: a raised error is a developer error; a returned
    ``{"error": ...}`` is an application error."""
    if error is not None:
        return DEVELOPER_ERROR
    if isinstance(result, dict) and "error" in result:
        return APPLICATION_ERROR
    return SUCCESS


@dataclass(slots=True)
class RecordDraft:
    """Everything known about one finished activation, before it is shaped."""

    activation_id: str
    namespace: str
    name: str
    version: str
    kind: str
    start_ms: int
    end_ms: int
    status_code: int
    result: dict[str, Any]
    logs: list[str] = field(default_factory=list)
    limits: dict[str, Any] = field(default_factory=dict)
    wait_ms: int | None = None
    init_ms: int | None = None
    timed_out: bool = False
    caused_by: str | None = None
    gleaner: dict[str, Any] = field(default_factory=dict)


def build_record(d: RecordDraft) -> dict[str, Any]:
    annotations: list[dict[str, Any]] = [
        {"key": "path", "value": f"{d.namespace}/{d.name}"},
        {"key": "kind", "value": d.kind},
        {"key": "limits", "value": d.limits},
    ]
    if d.wait_ms is not None:
        annotations.append({"key": "waitTime", "value": d.wait_ms})
    if d.init_ms is not None:
        annotations.append({"key": "initTime", "value": d.init_ms})
    if d.timed_out:
        annotations.append({"key": "timeout", "value": True})
    if d.caused_by:
        annotations.append({"key": "causedBy", "value": d.caused_by})
    return {
        "_id": f"{d.namespace}/{d.activation_id}",
        "entityType": "activation",
        "activationId": d.activation_id,
        "namespace": d.namespace,
        "subject": d.namespace,
        "name": d.name,
        "version": d.version,
        "start": d.start_ms,
        "end": d.end_ms,
        "duration": max(0, d.end_ms - d.start_ms),
        "statusCode": d.status_code,
        "response": {
            "status": STATUS_TEXT[d.status_code],
            "statusCode": d.status_code,
            "success": d.status_code == SUCCESS,
            "result": d.result,
        },
        "logs": d.logs,
        "annotations": annotations,
        "publish": False,
        "gleaner": d.gleaner,
    }


def public_view(doc: dict[str, Any]) -> dict[str, Any]:
    """The record as the API answers it (no CouchDB bookkeeping fields)."""
    return {k: v for k, v in doc.items() if k not in ("_id", "_rev", "entityType")}


def summary_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: doc[k] for k in SUMMARY_FIELDS if k in doc}


def annotation(doc: dict[str, Any], key: str) -> Any:
    for a in doc.get("annotations", []):
        if a.get("key") == key:
            return a.get("value")
    return None
