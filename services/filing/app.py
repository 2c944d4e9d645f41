"""The filing service's FastStream app: subscriptions and publications, no business logic.

Reads ``filing.commands`` (agencies' channels, hospitals' emergency filings) and the
calendar (``clearing.schedule``); publishes ``filing.events``.
"""

from __future__ import annotations

from pathlib import Path

from services.filing.handlers import make_handler
from shared import topics
from shared.config import load_settings
from shared.messaging.service import ServiceSpec, build_app

SPEC = ServiceSpec(
    name="filing",
    description="Filings (备案), their validity and the insured persons' benefit status.",
    consumes=(topics.FILING_COMMANDS, topics.CLEARING_SCHEDULE),
    publishes=(topics.FILING_EVENTS,),
    migrations=Path(__file__).parent / "migrations",
    make_handler=make_handler,
)

app, runtime = build_app(SPEC, load_settings())
