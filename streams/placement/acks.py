"""Which dispatched activations no invoker has answered yet.

Placement notes every activation it sends to an invoker and forgets it when
its completion appears. When an invoker goes silent (no heartbeat for
``invoker_unhealthy_after_s``), what it still owes is taken back and sent to
a healthy invoker. Pure bookkeeping, thread-safe (acks arrive on a listener
thread); bounded, oldest forgotten first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from streams.events import ActivationRequest


@dataclass(frozen=True, slots=True)
class Dispatched:
    invoker: str
    request: ActivationRequest


class Unacknowledged:
    def __init__(self, max_entries: int = 200_000) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict[str, Dispatched] = OrderedDict()
        self._max = max_entries

    def sent(self, invoker: str, request: ActivationRequest) -> None:
        with self._lock:
            self._items[request.activation_id] = Dispatched(invoker, request)
            self._items.move_to_end(request.activation_id)
            while len(self._items) > self._max:
                self._items.popitem(last=False)

    def acked(self, activation_id: str) -> None:
        with self._lock:
            self._items.pop(activation_id, None)

    def owed_by(self, invoker: str) -> list[ActivationRequest]:
        """Take back everything ``invoker`` still owes, oldest first."""
        with self._lock:
            taken = [aid for aid, d in self._items.items() if d.invoker == invoker]
            return [self._items.pop(aid).request for aid in taken]

    def invokers(self) -> set[str]:
        with self._lock:
            return {d.invoker for d in self._items.values()}

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
