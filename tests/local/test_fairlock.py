"""The handlers' lock of the local stack serves its waiters in arrival order."""

from __future__ import annotations

import threading

import pytest

from patchprop_local.fairlock import FairLock


def test_waiters_get_the_lock_in_the_order_they_asked() -> None:
    # Given the lock held, and 20 threads asking for it one after the other
    lock, order, threads = FairLock(), [], []
    lock.acquire()
    for n in range(20):
        queued = threading.Event()

        def take(n: int = n, queued: threading.Event = queued) -> None:
            queued.set()
            with lock:
                order.append(n)

        thread = threading.Thread(target=take)
        thread.start()
        queued.wait(5)
        while len(lock._waiters) < n + 1:  # it is in the queue
            threading.Event().wait(0.001)
        threads.append(thread)
    # When it is released
    lock.release()
    for thread in threads:
        thread.join(5)
    # Then each got it once, first come first served, and it is free again
    assert order == list(range(20))
    assert lock.acquire() and lock._held
    lock.release()


def test_releasing_an_unheld_lock_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="unheld"):
        FairLock().release()
