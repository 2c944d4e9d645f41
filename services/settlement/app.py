"""The settlement service's FastStream app: subscriptions and publications, no business logic.

Reads ``settlement.submissions`` (hospitals), ``filing.events`` (the filing query
model, co-partitioned by person) and ``reimbursement.claims`` (agencies' manual
reimbursement claims); publishes ``settlement.events`` and ``reimbursement.events``.
"""

from __future__ import annotations

from pathlib import Path

from services.settlement.handlers import make_handler
from shared import topics
from shared.config import load_settings
from shared.messaging.service import ServiceSpec, build_app

SPEC = ServiceSpec(
    name="settlement",
    description="Direct settlement (直接结算): insuring-place policy, benefit tiers, refunds "
                "and re-settlements.",
    consumes=(topics.SETTLEMENT_SUBMISSIONS, topics.FILING_EVENTS,
              topics.REIMBURSEMENT_CLAIMS),
    publishes=(topics.SETTLEMENT_EVENTS, topics.REIMBURSEMENT_EVENTS),
    migrations=Path(__file__).parent / "migrations",
    make_handler=make_handler,
)

app, runtime = build_app(SPEC, load_settings())
