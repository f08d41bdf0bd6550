"""Turn SIGINT/SIGTERM into a polite stop request the training loop checks between steps.

The first signal only sets :attr:`StopRequest.signal`; the loop finishes the step in flight (a step is
atomic: forward, backward and the optimizer update either all happen or none), saves a resumable
checkpoint and returns. A second signal raises ``KeyboardInterrupt`` at once; checkpoints are written
atomically, so even then the last complete one stays intact.
"""

import signal
import threading

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Context manager installing the handlers (only possible in the main thread; elsewhere a no-op)."""

    def __init__(self):
        self.signal: int | None = None
        self._previous = {}

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def _handle(self, signum, frame):
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signum

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in _SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
        return False
