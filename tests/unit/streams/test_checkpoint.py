from streams.kafka.checkpoint import Checkpoint
from streams.kafka.testing import MemorySink, MemorySource

TP = ("t", 0)


def checkpoint_with_one_done() -> tuple[Checkpoint, MemorySource, MemorySink]:
    source, sink = MemorySource(), MemorySink()
    cp = Checkpoint(source, sink, interval_s=0.2)
    cp.started(TP, 4)
    cp.done(TP, 4)
    return cp, source, sink


def test_flush_comes_before_the_commit():
    cp, source, sink = checkpoint_with_one_done()
    sink.produce("out", b"x")
    assert cp.commit()
    assert sink.delivered == 1 and source.commits == [{TP: 5}]
    assert cp.last_committed == {TP: 5}


def test_a_failed_flush_commits_nothing_and_the_next_commit_catches_up():
    cp, source, sink = checkpoint_with_one_done()
    sink.fail_flushes = 1
    assert not cp.commit() and source.commits == [] and cp.failures == 1
    assert cp.commit() and source.commits == [{TP: 5}]


def test_a_failed_commit_is_tried_again():
    cp, source, _ = checkpoint_with_one_done()
    source.fail_commits = 1
    assert not cp.commit()
    assert cp.commit() and source.commits == [{TP: 5}]
    assert cp.commit() and source.commits == [{TP: 5}]  # nothing new: nothing sent


def test_revoking_commits_what_is_done_and_forgets_the_partition():
    cp, source, _ = checkpoint_with_one_done()
    cp.started(TP, 5)
    cp.revoke([TP])
    assert source.commits == [{TP: 5}] and cp.in_flight() == 0 and cp.last_committed == {}
    cp.done(TP, 5)  # late: the next owner's
    assert cp.commit() and source.commits == [{TP: 5}]
