"""The three services by name, and how one is run as a process."""

from __future__ import annotations

import asyncio
from types import ModuleType

from shared.config import load_settings
from shared.logging import configure_logging
from shared.messaging.service import ServiceSpec

SERVICES = ("filing", "settlement", "clearing")


def _app_module(name: str) -> ModuleType:
    """The service's ``app`` module: its FastStream app and its `ServiceSpec`."""
    if name == "filing":
        from services.filing import app
    elif name == "settlement":
        from services.settlement import app
    elif name == "clearing":
        from services.clearing import app
    else:
        raise ValueError(f"unknown service {name!r}; one of {', '.join(SERVICES)}")
    return app


def spec_of(name: str) -> ServiceSpec:
    spec: ServiceSpec = _app_module(name).SPEC
    return spec


def run_service(name: str) -> int:
    """Run one service until SIGINT/SIGTERM; logs are JSON lines on stderr."""
    settings = load_settings()
    configure_logging(settings.log_level, service=name)
    asyncio.run(_app_module(name).app.run())
    return 0


# How services.supervisor starts a service: python -m services.registry NAME
if __name__ == "__main__":
    import sys

    sys.exit(run_service(sys.argv[1]))
