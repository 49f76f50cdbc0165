"""The handlers' lock, granted in arrival order.

The local stack runs one handler at a time, as one Lambda container would: a handler module holds
per-event state (the REST resolver's current event, Logger keys, the metrics buffer), each run
sets its function's environment in os.environ, and a snapshot of the state (persist.py) must see
no handler half-way. Under a burst, `threading.Lock` hands itself to whichever waiter wakes first,
so some webhook deliveries waited many turns (a p95 four times the median); this one serves
waiters first come, first served.
"""

from __future__ import annotations

import threading
from collections import deque
from contextlib import AbstractContextManager
from typing import Any

HandlerLock = AbstractContextManager[Any]  # what the pump, the gateway and the persister take


class FairLock:
    """A non-reentrant lock whose waiters get it in the order they asked."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._waiters: deque[threading.Lock] = deque()
        self._held = False

    def acquire(self) -> bool:
        with self._mutex:
            if not self._held:
                self._held = True
                return True
            gate = threading.Lock()
            gate.acquire()
            self._waiters.append(gate)
        gate.acquire()  # released by the holder when it hands the lock over
        return True

    def release(self) -> None:
        with self._mutex:
            if not self._held:
                raise RuntimeError("release of an unheld FairLock")
            if self._waiters:
                self._waiters.popleft().release()  # handed over: it stays held
            else:
                self._held = False

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
