"""The DAG-level activation record, shaped like OpenWhisk's record of a
conductor action: its ``logs`` list the child activation ids."""

from __future__ import annotations

from typing import Any

from composer.statemachine import RequestState
from gleaner.records import DEVELOPER_ERROR, SUCCESS, RecordDraft, build_record


def dag_record(
    state: RequestState,
    *,
    version: str,
    input_size: int,
    harvest: dict[str, Any] | None,
    status_code: int | None = None,
) -> dict[str, Any]:
    stages = []
    for stage in state.stages:
        functions: list[dict[str, Any]] = [
            {"activation_id": aid, "action": info.action, "index": info.index, "input_size": info.input_size}
            for aid, info in state.activations.items()
            if info.stage == stage["index"]
        ]
        functions.sort(key=lambda f: f["index"])
        stages.append({**stage, "functions": functions})
    if status_code is None:
        status_code = SUCCESS if state.status == "success" else DEVELOPER_ERROR
    draft = RecordDraft(
        activation_id=state.request_id,
        namespace=state.namespace,
        name=state.dag,
        version=version,
        kind="composition",
        start_ms=state.started_ms,
        end_ms=state.ended_ms or state.started_ms,
        status_code=status_code,
        result=state.result or {},
        logs=list(state.order),
        timed_out=state.status == "timeout",
        gleaner={
            "dag": {"name": state.dag, "input_size": input_size, "status": state.status, "stages": stages},
            "harvest": harvest,
        },
    )
    record = build_record(draft)
    record["annotations"].append({"key": "conductor", "value": True})
    return record
