"""One replay at a time per stack: a lease in Redis, renewed while the replay runs.

Two replays on one stack would measure each other's load, so a second one is
refused with the holder's name. (Their results could not mix anyway: each
replay listens only to its own request ids.) The lease expires on its own if
its holder dies, so a crashed replay never blocks the next for long.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from types import TracebackType

import orjson

from gleaner.errors import Conflict
from gleaner.redis_store import RedisStore

KEY = "gleaner:replay:lock"
TTL_S = 20
RENEW_S = 5.0


def _clock(epoch_s: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(epoch_s))


class ReplayLock:
    def __init__(self, redis: RedisStore, what: str) -> None:
        self.redis = redis
        self.token = orjson.dumps(
            {"host": socket.gethostname(), "pid": os.getpid(), "what": what, "since": int(time.time())}
        )
        self._stop = threading.Event()
        self._renewer = threading.Thread(target=self._renew, name="replay-lock", daemon=True)

    def __enter__(self) -> ReplayLock:
        if not self.redis.set_if_absent(KEY, self.token, TTL_S):
            holder = self.redis.get(KEY)
            who = orjson.loads(holder) if holder else {}
            raise Conflict(
                f"another replay is running ({who.get('what', '?')}, pid {who.get('pid', '?')} on "
                f"{who.get('host', '?')}, since {_clock(who.get('since', 0))}); "
                "wait for it to end: two replays on one stack would skew each other's figures"
            )
        self._renewer.start()
        return self

    def _renew(self) -> None:
        while not self._stop.wait(RENEW_S):
            try:
                if self.redis.get(KEY) == self.token:
                    self.redis.set(KEY, self.token, TTL_S)
            except Exception:  # Redis trouble: the lease lapses, which only allows a second replay
                pass

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._renewer.is_alive():
            self._renewer.join(2)
        try:
            if self.redis.get(KEY) == self.token:
                self.redis.delete(KEY)
        except Exception:
            pass
