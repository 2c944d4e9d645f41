"""Structured JSON logs (structlog): one line per event, bound with event and correlation ids."""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson
import structlog


def _dumps(obj: Any, default: Any = None) -> str:
    return orjson.dumps(obj, default=lambda o: str(o)).decode()


#: The level `configure_logging` set (everything is logged until it is called).
_level = logging.NOTSET


def log_enabled(level: int) -> bool:
    """Whether a structlog line at `level` would be written: lets a hot path skip building
    the arguments of a per-event debug line."""
    return level >= _level


def configure_logging(level: str = "INFO", *, service: str | None = None,
                      json: bool = True) -> None:
    """Configure structlog and the standard library to write JSON lines to stderr.

    Per-event lines are at debug level; at info a service logs one summary per batch
    (``CLEARINGHOUSE_LOG_LEVEL=DEBUG`` brings the per-event lines back)."""
    global _level
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    _level = numeric
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_dumps) if json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    if service:
        structlog.contextvars.bind_contextvars(service=service)
    # Libraries (aiokafka, faststream) log through the standard library: route them to JSON too.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_StdlibJsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # FastStream installs a coloured text handler on its own logger, which does not propagate.
    logging.getLogger("faststream").handlers[:] = [handler]
    root.setLevel(max(numeric, logging.WARNING))
    logging.getLogger("faststream.app").setLevel(numeric)


class _StdlibJsonFormatter(logging.Formatter):
    def __init__(self, service: str | None):
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "event": record.getMessage(), "level": record.levelname.lower(),
            "logger": record.name, "timestamp": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
        }
        if self._service:
            entry["service"] = self._service
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _dumps(entry)


def bind_event(event_id: str, correlation_id: str | None) -> None:
    """Bind the event being handled to every log line until `unbind_event`."""
    structlog.contextvars.bind_contextvars(event_id=event_id, correlation_id=correlation_id)


def unbind_event() -> None:
    structlog.contextvars.unbind_contextvars("event_id", "correlation_id")
