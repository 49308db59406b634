from gleaner.records import (
    APPLICATION_ERROR,
    DEVELOPER_ERROR,
    SUCCESS,
    RecordDraft,
    annotation,
    build_record,
    public_view,
    status_of,
    summary_view,
)


def test_status_follows_openwhisk():
    assert status_of({"x": 1}, None) == SUCCESS
    assert status_of({"error": "nope"}, None) == APPLICATION_ERROR
    assert status_of(None, "boom") == DEVELOPER_ERROR


def test_record_shape():
    rec = build_record(
        RecordDraft(
            activation_id="a" * 32,
            namespace="guest",
            name="hello",
            version="0.0.1",
            kind="python:3",
            start_ms=1000,
            end_ms=1250,
            status_code=DEVELOPER_ERROR,
            result={"error": "x"},
            init_ms=300,
            wait_ms=5,
            timed_out=True,
            gleaner={"origin": "user"},
        )
    )
    assert rec["_id"] == "guest/" + "a" * 32 and rec["duration"] == 250
    assert rec["response"] == {
        "status": "action developer error",
        "statusCode": 2,
        "success": False,
        "result": {"error": "x"},
    }
    assert annotation(rec, "initTime") == 300 and annotation(rec, "timeout") is True
    assert annotation(rec, "path") == "guest/hello"
    assert "_id" not in public_view(rec) and public_view(rec)["gleaner"] == {"origin": "user"}
    assert "response" not in summary_view(rec) and "logs" not in summary_view(rec)


def test_warm_record_has_no_init_time():
    rec = build_record(
        RecordDraft(
            activation_id="b" * 32,
            namespace="g",
            name="n",
            version="1",
            kind="python:3",
            start_ms=0,
            end_ms=1,
            status_code=SUCCESS,
            result={},
        )
    )
    assert annotation(rec, "initTime") is None
