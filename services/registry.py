"""The three services by name, and how one is run as a process."""

from __future__ import annotations

import asyncio
import importlib

from shared.config import load_settings
from shared.logging import configure_logging
from shared.messaging.service import ServiceSpec

SERVICES = ("filing", "settlement", "clearing")


def spec_of(name: str) -> ServiceSpec:
    if name not in SERVICES:
        raise ValueError(f"unknown service {name!r}; one of {', '.join(SERVICES)}")
    module = importlib.import_module(f"services.{name}.app")
    spec: ServiceSpec = module.SPEC
    return spec


def run_service(name: str) -> int:
    """Run one service until SIGINT/SIGTERM; logs are JSON lines on stderr."""
    settings = load_settings()
    configure_logging(settings.log_level, service=name)
    module = importlib.import_module(f"services.{name}.app")
    asyncio.run(module.app.run())
    return 0


# How services.supervisor starts a service: python -m services.registry NAME
if __name__ == "__main__":
    import sys

    sys.exit(run_service(sys.argv[1]))
