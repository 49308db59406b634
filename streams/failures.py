"""The completion of an activation that could not run: it still ends in
exactly one record, so a caller or a DAG waiting on it hears why."""

from __future__ import annotations

from gleaner.records import RecordDraft, build_record
from streams.events import ActivationCompleted, ActivationRequest, now_ms


def failed_completion(
    req: ActivationRequest, status_code: int, reason: str, invoker: str = ""
) -> ActivationCompleted:
    ts = now_ms()
    record = build_record(
        RecordDraft(
            activation_id=req.activation_id,
            namespace=req.namespace,
            name=req.action,
            version="0.0.0",
            kind="unknown",
            start_ms=ts,
            end_ms=ts,
            status_code=status_code,
            result={"error": reason},
            caused_by=req.caused_by,
            gleaner={"invoker": invoker or None, "composition": req.composition},
        )
    )
    return ActivationCompleted(
        activation_id=req.activation_id,
        namespace=req.namespace,
        action=req.action,
        invoker=invoker,
        record=record,
        caused_by=req.caused_by,  # so a DAG waiting on it hears of the failure
    )


def completion_key(req: ActivationRequest) -> str:
    """Keyed by the DAG request: its completions meet its request on one partition."""
    return req.caused_by or req.activation_id
