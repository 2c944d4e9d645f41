"""Running a command's coroutine so that SIGTERM stops it as cleanly as Ctrl-C does."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

try:  # Linux: prctl(PR_SET_PDEATHSIG, ...), looked up once, before any fork
    _PRCTL: Callable[..., int] | None = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _PRCTL = None
_PR_SET_PDEATHSIG = 1


class Interrupted(Exception):
    """The command was stopped by Ctrl-C or SIGTERM; its clean-up (``finally``) has run."""


def run_cancellable(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``, where SIGTERM (a supervisor, ``kill``) and SIGHUP (a closed
    terminal) cancel `main` as Ctrl-C does, so its ``finally`` blocks stop the processes and
    drop the databases it started instead of leaving them behind. Raises `Interrupted`."""

    async def guarded() -> T:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, ValueError, RuntimeError):
                loop.add_signal_handler(sig, task.cancel)
        return await main

    try:
        return asyncio.run(guarded())
    except (KeyboardInterrupt, asyncio.CancelledError) as exc:
        raise Interrupted() from exc


def die_with_parent(parent: int | None = None) -> Callable[[], None]:
    """A ``preexec_fn`` for `subprocess.Popen`: the child is sent SIGTERM when the process
    that started it dies, however it dies (Linux; elsewhere nothing happens). A supervisor
    that is killed (``kill -9``, out of memory) then leaves no service running on its
    namespace. Call it in the thread that starts the child: the signal follows that thread.
    A child started otherwise (`multiprocessing`) calls ``die_with_parent(os.getppid())()``
    itself, first thing."""
    parent = os.getpid() if parent is None else parent

    def arm() -> None:
        if _PRCTL is not None:
            _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)
            if os.getppid() != parent:  # the parent died before the line above
                os.kill(os.getpid(), signal.SIGTERM)

    return arm
