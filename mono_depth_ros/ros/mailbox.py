"""
The one-slot mailbox between depth_node's subscription callback and its worker thread.

The executor thread only stores the newest image and returns; the worker takes it when it
is free. An image not yet taken when the next arrives is overwritten (a dropped frame, which
the caller counts), so latency stays bounded when the model is slower than the camera:
never a queue of stale frames. The mailbox's condition is also what the CameraInfo pairing
waits on (:mod:`.camera_info_pairing`), so that a newer image ends that wait.
"""

import threading
from typing import Any, Callable, Optional

#: how often a waiting worker looks at its stop event (seconds)
POLL_S = 0.2


class Mailbox:
    """The newest image, stored by the executor and taken by the worker."""

    def __init__(self):
        self.cond = threading.Condition()
        self._msg: Optional[Any] = None

    def put(self, msg: Any, on_store: Optional[Callable[[bool], None]] = None) -> bool:
        """
        Store msg, waking the worker; return True when it overwrote an untaken one.

        ``on_store(dropped)`` (optional) is called under the lock, before the worker can
        take msg, with what is returned.
        """
        with self.cond:
            dropped = self._msg is not None
            if on_store is not None:
                on_store(dropped)
            self._msg = msg
            self.cond.notify_all()
        return dropped

    def take(self, stop: threading.Event) -> Optional[Any]:
        """Wait for an image or for stop; return the image (emptying the slot), or None."""
        with self.cond:
            while self._msg is None and not stop.is_set():
                self.cond.wait(POLL_S)
            msg, self._msg = self._msg, None
        return msg

    def waiting(self) -> bool:
        """Return True when an image waits in the slot (call with ``cond`` held)."""
        return self._msg is not None

    def clear(self) -> None:
        """Forget an untaken image."""
        with self.cond:
            self._msg = None

    def wake(self) -> None:
        """Wake a waiting worker (to see its stop event)."""
        with self.cond:
            self.cond.notify_all()
