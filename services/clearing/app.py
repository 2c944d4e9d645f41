"""The clearing service's FastStream app: subscriptions and publications, no business logic.

Reads ``settlement.events``, agencies' ``clearing.submissions`` and the calendar
(``clearing.schedule``); publishes ``clearing.results``.
"""

from __future__ import annotations

from pathlib import Path

from services.clearing.handlers import make_handler
from shared import topics
from shared.config import load_settings
from shared.messaging.service import ServiceSpec, build_app

SPEC = ServiceSpec(
    name="clearing",
    description="Per-agency double-entry ledgers, daily reports, the monthly clearing cycle, "
                "net-transfer instructions through the hub and difference notices.",
    consumes=(topics.SETTLEMENT_EVENTS, topics.CLEARING_SUBMISSIONS, topics.CLEARING_SCHEDULE),
    publishes=(topics.CLEARING_RESULTS,),
    migrations=Path(__file__).parent / "migrations",
    make_handler=make_handler,
    # One set of ledgers for every agency, inputs ordered across partitions: one active
    # instance, the others on standby (docs/architecture.md, "Several instances").
    single_active=True,
)

app, runtime = build_app(SPEC, load_settings())
