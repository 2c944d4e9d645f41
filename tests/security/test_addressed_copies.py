"""Each participant reads what is addressed to it on a topic of its own: every clearing
result is also on ``clearing.results.<agency>`` and every settlement outcome also on
``settlement.events.<hospital>``, byte for byte, read there by that participant's own
login (the services run as themselves, against the real broker and database)."""

from __future__ import annotations

from datetime import date

import pytest

from services.clearing import scheduler
from shared import topics
from shared.messaging.clients import AUDITOR, agency_principal, hospital_principal
from tests.helpers import (
    Services,
    create_topics,
    enrol,
    new_prefix,
    produce,
    read_topic,
)
from tests.integration.test_clearing_service import (
    CHANGCHUN,
    IN_CHANGCHUN,
    IN_JILIN,
    JILIN,
    outpatient,
)

pytestmark = pytest.mark.infra


async def test_results_and_outcomes_reach_their_addressees_only(
        infra, fresh_database, tmp_path) -> None:
    prefix = new_prefix()
    bootstrap = infra.kafka_bootstrap
    await create_topics(bootstrap, prefix)
    services = Services(bootstrap, fresh_database, prefix, tmp_path)
    services.start("filing", "settlement", "clearing")
    try:
        await enrol(bootstrap, prefix, [("PJ1", JILIN, "employee"), ("PC1", CHANGCHUN, "employee")],
                    fresh_database)
        await produce(bootstrap, prefix + topics.SETTLEMENT_SUBMISSIONS,
                      [outpatient("S1", IN_CHANGCHUN, "PJ1", JILIN, "2026-10-09", "3000.00")],
                      principal=hospital_principal(IN_CHANGCHUN))
        await produce(bootstrap, prefix + topics.SETTLEMENT_SUBMISSIONS,
                      [outpatient("S2", IN_JILIN, "PC1", CHANGCHUN, "2026-10-09", "800.00")],
                      principal=hospital_principal(IN_JILIN))
        # the days cut the log where it ends when they start: settle first
        outcomes = await read_topic(bootstrap, prefix + topics.SETTLEMENT_EVENTS,
                                    principal=AUDITOR, until=lambda rs: len(rs) >= 2)
        await scheduler.advance(bootstrap, date(2026, 11, 2), prefix=prefix,
                                start=date(2026, 10, 1))
        every = await read_topic(
            bootstrap, prefix + topics.CLEARING_RESULTS, principal=AUDITOR, timeout=90,
            until=lambda rs: sum(r.json()["type"] == "clearing.statement_issued"
                                 for r in rs) >= 2)
        for agency in (CHANGCHUN, JILIN):
            addressed = [r for r in every if r.key == agency.encode()]
            count = len(addressed)
            own = await read_topic(bootstrap, prefix + topics.agency_results(agency),
                                   principal=agency_principal(agency),
                                   until=lambda rs, n=count: len(rs) >= n)
            assert addressed and [r.value for r in own][:len(addressed)] == [
                r.value for r in addressed]
            assert all(r.key == agency.encode() for r in own)
            assert all(r.headers.get("addressee") == agency.encode() for r in own)
        for hospital, sid in ((IN_CHANGCHUN, "S1"), (IN_JILIN, "S2")):
            own = await read_topic(bootstrap, prefix + topics.hospital_outcomes(hospital),
                                   principal=hospital_principal(hospital),
                                   until=lambda rs: len(rs) >= 1)
            assert [r.json()["data"]["settlement_id"] for r in own] == [sid]
            assert own[0].value in {r.value for r in outcomes}
    finally:
        services.stop()
