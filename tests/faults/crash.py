"""The crash tests' fault injection: run a module (a service) so that its process dies right
after its Nth commit, before the Kafka offsets are committed and before the outbox relay
publishes (docs/reliability.md). Production code knows nothing of it.

    python -m tests.faults.crash N MODULE [ARGS...]     e.g. N=2 services.registry clearing

The process exits with `EXIT_CODE` (86).
"""

from __future__ import annotations

import os
import runpy
import sys
from typing import Any

import structlog

from shared.messaging.processing import BatchProcessor

EXIT_CODE = 86


def crash_after_commits(count: int) -> None:
    """Make every `BatchProcessor` of this process end it right after its `count`-th commit:
    nothing awaits between the transaction's end and the exit, so neither the offsets nor
    the relay move on."""
    commit = BatchProcessor._commit

    async def commit_then_crash(self: BatchProcessor, *args: Any) -> None:
        await commit(self, *args)
        if self.commits >= count:
            structlog.get_logger(__name__).warning("fault.crash_after_commit",
                                                   commits=self.commits)
            os._exit(EXIT_CODE)

    BatchProcessor._commit = commit_then_crash  # type: ignore[method-assign]


def launcher(count: int) -> tuple[str, ...]:
    """The arguments before a module's name that run it with the crash injection."""
    return ("-m", __name__, str(count))


def main(argv: list[str]) -> None:
    if len(argv) < 2 or not argv[0].isdigit() or int(argv[0]) < 1:
        sys.exit(f"usage: python -m {__name__} N MODULE [ARGS...] (N >= 1)")
    crash_after_commits(int(argv[0]))
    sys.argv = [argv[1], *argv[2:]]
    runpy.run_module(argv[1], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
