"""uvicorn's server as the portal runs it."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

import uvicorn


class Server(uvicorn.Server):
    """uvicorn's server, stopping on SIGINT/SIGTERM without raising the signal again after
    its graceful shutdown (which would print a traceback over a clean stop)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        originals = {sig: signal.signal(sig, self.handle_exit)
                     for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)
