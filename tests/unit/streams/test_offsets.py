from streams.kafka.offsets import OffsetTracker

TP = ("invoker.i0", 0)


def test_only_the_contiguous_prefix_is_committable():
    t = OffsetTracker()
    for o in (5, 6, 7):
        t.started(TP, o)
    t.done(TP, 7)
    # 5 and 6 still run: the commit must not pass 5, or a crash would lose them
    assert t.committable() == {TP: 5}
    t.done(TP, 5)
    assert t.committable() == {TP: 6}
    t.done(TP, 6)
    assert t.committable() == {TP: 8}
    assert t.committable() == {}  # nothing moved
    assert t.in_flight() == 0


def test_partitions_are_independent():
    t = OffsetTracker()
    other = ("invoker.i0", 1)
    t.started(TP, 0)
    t.started(other, 10)
    t.done(other, 10)
    assert t.committable() == {other: 11}
