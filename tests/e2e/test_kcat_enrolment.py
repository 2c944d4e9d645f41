"""Insured persons are known (issue 17), end to end as outside parties see it: an agency
enrols with plain kcat, a hospital settles with plain kcat; a person no agency enrolled,
and a submission that disagrees with the registry, are refused; a bulk import of 100,000
rows with one bad row reports that row and loads the rest.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from shared import topics
from shared.config import REPO_ROOT
from shared.messaging.clients import AUDITOR, agency_principal, hospital_principal
from tests.e2e.test_kcat_contract import kcat_config, kcat_enrol, kcat_produce, kcat_read
from tests.helpers import ENROLLED_SINCE, running_services, wait_enrolled
from tools.demo.run import caught_up

pytestmark = [pytest.mark.infra,
              pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed")]

HOSPITAL = "H220281001"  # 蛟河市人民医院: a 长春 (220100) person's care is owed to 220281
FORGED = "P-220100-FORGE-0001"
ENROLLED = "P-220100-KCAT-0001"


def submission(serial: int, person: str, *, insured_agency: str = "220100",
               insurance_type: str = "employee") -> dict:
    return {
        "specversion": "1.0", "id": f"{HOSPITAL}-{serial:06d}", "source": f"hospital/{HOSPITAL}",
        "type": "settlement.submitted", "time": "2026-10-03T09:15:00+08:00",
        "data": {"settlement_id": f"S-ENR-{serial}", "hospital": HOSPITAL, "person_id": person,
                 "insured_agency": insured_agency, "insurance_type": insurance_type,
                 "visit_type": "inpatient", "admitted_on": "2026-10-01",
                 "discharged_on": "2026-10-03", "settled_at": "2026-10-03T09:15:00+08:00",
                 "emergency": False, "referral": False,
                 "items": [{"code": "SURGERY", "name": "手术费", "category": "A",
                            "amount": "50000.00"}]}}


async def test_unknown_and_mismatched_persons_are_refused(infra, fresh_database,
                                                          tmp_path) -> None:
    agency = kcat_config(infra, tmp_path, agency_principal("220100"))
    hospital = kcat_config(infra, tmp_path, hospital_principal(HOSPITAL))
    async with running_services(infra.kafka_bootstrap, fresh_database, tmp_path,
                                "filing", "settlement") as services:
        prefix = services.prefix
        kcat_enrol(agency, prefix + topics.FILING_COMMANDS, ENROLLED, "employee",
                   id="220100-enrol-000001")
        answers = await asyncio.to_thread(kcat_read, agency, prefix + topics.FILING_EVENTS, 1)
        assert [a["type"] for a in answers] == ["person.enrolled"], answers
        await wait_enrolled(fresh_database, [ENROLLED])
        for serial, (person, changes) in enumerate([
                (FORGED, {}),  # nobody enrolled this person
                (ENROLLED, {"insured_agency": "220200"}),  # enrolled with 长春, not 吉林市
                (ENROLLED, {"insurance_type": "resident"}),  # an employee, not a resident
                (ENROLLED, {})], start=1):  # as enrolled: settled
            kcat_produce(hospital, prefix + topics.SETTLEMENT_SUBMISSIONS, person,
                         submission(serial, person, **changes))
        results = await asyncio.to_thread(
            kcat_read, hospital, prefix + topics.hospital_outcomes(HOSPITAL), 4)
    by_id = {e["data"]["settlement_id"]: e for e in results}
    forged = by_id["S-ENR-1"]
    assert forged["type"] == "settlement.rejected"
    assert [r["code"] for r in forged["data"]["reasons"]] == ["person_not_enrolled"]
    assert FORGED in forged["data"]["reasons"][0]["message"]
    for settlement_id, given, registered in (("S-ENR-2", "220200", "220100"),
                                             ("S-ENR-3", "resident", "employee")):
        refused = by_id[settlement_id]
        assert refused["type"] == "settlement.rejected", refused
        (reason,) = refused["data"]["reasons"]
        assert reason["code"] == "enrolment_mismatch"
        assert given in reason["message"] and registered in reason["message"], reason
    settled = by_id["S-ENR-4"]
    assert settled["type"] == "settlement.completed", settled
    assert (settled["data"]["insured_agency"], settled["data"]["care_agency"]) == (
        "220100", "220281")


ROWS = 100_000
BAD_LINE = 61_234  # the header is line 1


def write_csv(path: Path) -> None:
    rng = random.Random(17)
    agencies = ("220100", "220200", "220281", "220500")
    lines = ["person_id,insured_agency,insurance_type,effective,date_of_birth"]
    for n in range(ROWS):
        line = len(lines) + 1
        agency = agencies[n % len(agencies)]
        insurance = "employee" if rng.random() < 0.6 else "resident"
        if line == BAD_LINE:
            insurance = "worker"
        born = f"19{rng.randrange(40, 99)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
        lines.append(f"P-{agency}-{n:07d},{agency},{insurance},{ENROLLED_SINCE},{born}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def run_import(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", "enrolment", "import", *args],
                          env={**os.environ, **env}, cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=900)


async def count(database_url: str, sql: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval(sql))
    except asyncpg.UndefinedTableError:
        return 0
    finally:
        await conn.close()


@pytest.mark.timeout(1200)  # 100,000 signed rows through Kafka and the filing service
async def test_import_100000_rows_reports_the_bad_row_and_loads_the_rest(
        infra, fresh_database, tmp_path) -> None:
    csv_path = tmp_path / "persons.csv"
    write_csv(csv_path)
    bootstrap = infra.kafka_bootstrap
    async with running_services(bootstrap, fresh_database, tmp_path, "filing") as services:
        prefix = services.prefix
        # A first run stops early (as an interrupted one would); the second resumes.
        first = run_import(services.env, str(csv_path), "--max-rows", "40000")
        assert first.returncode == 0, first.stderr
        assert "stopped (run again to resume)" in first.stdout
        second = run_import(services.env, str(csv_path))
        assert second.returncode == 1, (second.stdout, second.stderr)
        assert "resuming after line 40,001" in second.stderr
        assert f"persons.csv: line {BAD_LINE}: insurance_type 'worker'" in second.stderr, \
            second.stderr
        assert "1 bad row(s) left out; done" in second.stdout
        assert "59,999 rows sent" in second.stdout and "99,999 in all" in second.stdout

        # Loaded: the filing service holds 99,999 persons and has said so on filing.events.
        deadline = asyncio.get_running_loop().time() + 600
        while await count(fresh_database, "SELECT count(*) FROM filing.persons") < ROWS - 1:
            assert asyncio.get_running_loop().time() < deadline, "the import did not load"
            await asyncio.sleep(1)
        group = "clearinghouse.filing"
        while not await caught_up(bootstrap, group, [prefix + topics.FILING_COMMANDS]):
            await asyncio.sleep(1)
        # Sent again in full: every row is a duplicate the inbox drops, none applies twice.
        again = run_import(services.env, str(csv_path), "--restart")
        assert again.returncode == 1 and "99,999 rows sent" in again.stdout, again.stdout
        while not await caught_up(bootstrap, group, [prefix + topics.FILING_COMMANDS]):
            await asyncio.sleep(1)
        answers = await asyncio.to_thread(_types, kcat_config(infra, tmp_path, AUDITOR),
                                          prefix + topics.FILING_EVENTS)
    assert answers == {"person.enrolled": ROWS - 1}, answers
    assert await count(fresh_database, "SELECT count(*) FROM filing.persons") == ROWS - 1
    assert await count(fresh_database, "SELECT count(*) FROM filing.inbox") == ROWS - 1
    bad_person = f"P-{('220100', '220200', '220281', '220500')[(BAD_LINE - 2) % 4]}-" \
                 f"{BAD_LINE - 2:07d}"
    assert await count(fresh_database, "SELECT count(*) FROM filing.persons "
                                       f"WHERE person_id = '{bad_person}'") == 0


def _types(config: Path, topic: str) -> dict[str, int]:
    """Count the event types on `topic`, read with plain kcat from the start to its end."""
    result = subprocess.run(["kcat", "-F", str(config), "-C", "-t", topic, "-o", "beginning",
                             "-e", "-q", "-f", "%s\n"], capture_output=True, timeout=300,
                            check=True)
    found: dict[str, int] = {}
    for line in result.stdout.splitlines():
        if line.strip():
            kind = line.split(b'"type":"', 1)[1].split(b'"', 1)[0].decode()
            found[kind] = found.get(kind, 0) + 1
    return found
