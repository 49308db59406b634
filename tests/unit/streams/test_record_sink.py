from streams.record_sink import batch_outcome


def test_conflicts_count_as_already_written():
    written, dupes, errors = batch_outcome(
        [
            {"id": "a", "rev": "1-x"},
            {"id": "b", "error": "conflict", "reason": "Document update conflict"},
            {"id": "c", "error": "forbidden", "reason": "no"},
        ]
    )
    assert (written, dupes) == (1, 1) and errors == ["c: forbidden no"]
