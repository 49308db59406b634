from gleaner.errors import KafkaError
from streams.kafka.checkpoint import checkpoint
from streams.kafka.offsets import OffsetTracker


class Producer:
    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.flushed = 0

    def flush(self) -> None:
        self.flushed += 1
        if self.fail:
            raise KafkaError("broker gone")


class Consumer:
    def __init__(self) -> None:
        self.commits: list[dict] = []

    def commit(self, offsets: dict) -> None:
        self.commits.append(offsets)


def tracker() -> OffsetTracker:
    t = OffsetTracker()
    t.started(("t", 0), 4)
    t.done(("t", 0), 4)
    return t


def test_flush_comes_before_the_commit():
    producer, consumer = Producer(fail=False), Consumer()
    assert checkpoint(consumer, producer, tracker())  # type: ignore[arg-type]
    assert producer.flushed == 1 and consumer.commits == [{("t", 0): 5}]


def test_a_failed_flush_commits_nothing():
    producer, consumer = Producer(fail=True), Consumer()
    assert not checkpoint(consumer, producer, tracker())  # type: ignore[arg-type]
    assert consumer.commits == []
