"""A settlement workload whose every outcome the test works out by hand, independently of the
services' code.

Amounts are chosen so that the policy engine's result is a one-line formula: inpatient stays
at level-3 hospitals, category-A items only (the catalogue plays no part), each stay of a
person admitted on its own day (its own per-admission deductible), bills far below the annual
cap, and routes whose tier does not depend on whether a filing arrived first. With the
deductible D, the ratio r and the tier reduction t read from the reference files and the
tier table:

    fund_pay    = round_half_up((A − min(A, D)) × (r − t))
    account_pay = min(personal_account_request, A − fund_pay)   (residents: 0)
    cash_pay    = A − fund_pay − account_pay
    cleared     = fund_pay + account_pay

Everything the clearing service must produce (daily reports, statements, instructions and
ledger balances) then follows from the cleared amounts by addition only; see `Expected`.
"""

from __future__ import annotations

import hashlib
import random
import tomllib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from shared import inbound
from shared.config import REPO_ROOT

FEN = Decimal("0.01")
ZERO = Decimal("0.00")
SHANGHAI_OFFSET = "+08:00"
HUB = "hub"
CYCLE = "2026-10"


@dataclass(frozen=True)
class Route:
    """Where a person insured by `insured_agency` is treated, and the tier reduction that the
    tier table gives that trip (read by hand from reference/tiers/jilin-2022.toml)."""

    insured_agency: str
    hospital: str
    care_agency: str
    reduction: Decimal
    #: A relocated-retiree filing may point here; it cannot change the tier of this trip.
    filing_destination: str | None = None
    note: str = ""


ROUTES: tuple[Route, ...] = (
    # 长春 person at 吉林市中心医院 (district of another city), no filing: tier 3, −0.20.
    Route("220100", "H220202001", "220200", Decimal("0.20"), note="other_city_district"),
    # 吉林 person at 吉林大学第二医院 (长春 district), no filing: tier 3, −0.20.
    Route("220200", "H220102001", "220100", Decimal("0.20"), note="other_city_district"),
    # 蛟河 person in 吉林市 proper (same city, another county pool), 免申即享: tier 1.
    Route("220281", "H220202001", "220200", Decimal("0.00"), note="same_city_other_county_pool"),
    # 通化 person at 蛟河市人民医院 (county area of another city): tier 1 with or without a
    # relocated filing to 220281 (a filing that the filing service registers meanwhile).
    Route("220500", "H220281001", "220281", Decimal("0.00"), filing_destination="220281",
          note="other_city_county_area"),
    # 吉林 person at 通化市中心医院 (district): tier 3.
    Route("220200", "H220502001", "220500", Decimal("0.20"), note="other_city_district"),
    # 长春 person at 梅河口市中心医院 (county area of 通化): tier 1.
    Route("220100", "H220581001", "220500", Decimal("0.00"), note="other_city_county_area"),
    # 吉林 person at 吉林市人民医院: the own pool, settled but never cleared.
    Route("220200", "H220204001", "220200", Decimal("0.00"), note="same_pool"),
)


def round_fen(value: Decimal) -> Decimal:
    return value.quantize(FEN, rounding=ROUND_HALF_UP)


def money(value: Decimal) -> str:
    return str(value.quantize(FEN))


_POLICIES: dict[str, dict[str, Any]] = {}


def inpatient_rule(agency: str, insurance_type: str) -> tuple[Decimal, Decimal]:
    """(deductible, ratio) of level-3 inpatient care in the agency's policy file."""
    if agency not in _POLICIES:
        path = REPO_ROOT / "reference" / "settlement-policies" / f"{agency}.toml"
        _POLICIES[agency] = tomllib.loads(path.read_text(encoding="utf-8"))
    rule = _POLICIES[agency][insurance_type]["inpatient"]["level_3"]
    return Decimal(rule["deductible"]), Decimal(rule["ratio"])


@dataclass(frozen=True)
class Amounts:
    total: Decimal
    deductible: Decimal
    fund_pay: Decimal
    account_pay: Decimal
    cash_pay: Decimal
    cleared_amount: Decimal

    def as_strings(self) -> dict[str, str]:
        return {k: money(getattr(self, k)) for k in (
            "total", "deductible", "fund_pay", "account_pay", "cash_pay", "cleared_amount")}


def hand_amounts(route: Route, insurance_type: str, amount: Decimal,
                 request: Decimal | None) -> Amounts:
    """The formula in the module docstring."""
    deductible_rule, ratio = inpatient_rule(route.insured_agency, insurance_type)
    deductible = min(amount, deductible_rule)
    fund = round_fen((amount - deductible) * max(Decimal(0), ratio - route.reduction))
    account = min(request or ZERO, amount - fund) if insurance_type == "employee" else ZERO
    cash = amount - fund - account
    return Amounts(amount, deductible, fund, account, cash, fund + account)


# ---- the events a hospital and an agency send ----------------------------------------------


def envelope(type_: str, data: dict[str, Any], *, id: str, source: str, time: str) -> bytes:
    return inbound.envelope(type_, data, id=id, source=source, time=time)


def at(day: date, hour: int, minute: int = 0) -> str:
    return f"{day.isoformat()}T{hour:02d}:{minute:02d}:00{SHANGHAI_OFFSET}"


@dataclass(frozen=True)
class Settlement:
    settlement_id: str
    person: str
    route: Route
    insurance_type: str
    admitted_on: date
    discharged_on: date
    settled_at: str
    amount: Decimal
    request: Decimal | None
    resettles: str | None = None

    @property
    def message_id(self) -> str:
        return f"{self.route.hospital}-{self.settlement_id}"

    @property
    def expected(self) -> Amounts:
        return hand_amounts(self.route, self.insurance_type, self.amount, self.request)

    @property
    def cross_region(self) -> bool:
        return self.route.insured_agency != self.route.care_agency

    def data(self) -> dict[str, Any]:
        return inbound.settlement_submitted(
            settlement_id=self.settlement_id, hospital=self.route.hospital,
            person_id=self.person, insured_agency=self.route.insured_agency,
            insurance_type=self.insurance_type, visit_type="inpatient",
            admitted_on=self.admitted_on.isoformat(),
            discharged_on=self.discharged_on.isoformat(), settled_at=self.settled_at,
            items=[{"code": "WARD", "name": "病房", "category": "A",
                    "amount": money(self.amount)}],
            personal_account_request=(money(self.request) if self.request is not None
                                      else None),
            resettles=self.resettles or None)

    def message(self) -> bytes:
        return envelope("settlement.submitted", self.data(), id=self.message_id,
                        source=f"hospital/{self.route.hospital}", time=self.settled_at)


@dataclass(frozen=True)
class Refund:
    refund_id: str
    original: Settlement
    refunded_at: str

    @property
    def message_id(self) -> str:
        return f"{self.original.route.hospital}-{self.refund_id}"

    def message(self) -> bytes:
        s = self.original
        return envelope("settlement.refund_requested", inbound.refund_requested(
            refund_id=self.refund_id, settlement_id=s.settlement_id,
            hospital=s.route.hospital, person_id=s.person, reason="items corrected",
            refunded_at=self.refunded_at,
        ), id=self.message_id, source=f"hospital/{s.route.hospital}", time=self.refunded_at)


@dataclass(frozen=True)
class Filing:
    filing_id: str
    person: str
    route: Route
    insurance_type: str

    def message(self) -> bytes:
        return envelope("filing.requested", {
            "filing_id": self.filing_id, "person_id": self.person,
            "insured_agency": self.route.insured_agency, "insurance_type": self.insurance_type,
            "category": "relocated_retiree", "destination": self.route.filing_destination,
            "valid_from": "2026-09-01", "materials": ["credential", "relocation_proof"],
            "commitment": False, "channel": "online",
        }, id=f"FR-{self.filing_id}", source=f"agency/{self.route.insured_agency}",
            time="2026-09-30T10:00:00+08:00")


Message = tuple[str, str, bytes]
"""(topic, key, value): what a hospital or an agency publishes."""

#: Every person of a workload is enrolled from long before October 2026.
ENROLLED_SINCE = "2020-01-01"


def enrolment(person: str, insured_agency: str, insurance_type: str) -> Message:
    """The insuring agency's ``person.enrolled`` (参保登记): sent, and folded by the settlement
    service, before anything else of the person (`harness.enrol_persons`)."""
    return ("filing.commands", person, envelope("person.enrolled", {
        "person_id": person, "insured_agency": insured_agency, "insurance_type": insurance_type,
        "effective": ENROLLED_SINCE}, id=f"ENR-{insured_agency}-{person}",
        source=f"agency/{insured_agency}", time="2026-09-01T08:00:00+08:00"))


@dataclass
class Workload:
    """Everything sent, in the order it is sent, and what it must produce."""

    settlements: list[Settlement] = field(default_factory=list)
    refunds: list[Refund] = field(default_factory=list)
    filings: list[Filing] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    #: settlement_id → reason code of a settlement.rejected the workload provokes on purpose.
    rejected: dict[str, str] = field(default_factory=dict)
    #: Each person's messages in the order that person's hospital and agency send them.
    per_person: dict[str, list[tuple[str, bytes]]] = field(default_factory=dict)
    #: person → (insured_agency, insurance_type): whom the agencies enrol first.
    persons: dict[str, tuple[str, str]] = field(default_factory=dict)

    def enrolments(self) -> list[Message]:
        return [enrolment(p, agency, insurance) for p, (agency, insurance)
                in self.persons.items()]

    def interleaved(self, seed: int) -> list[Message]:
        """The same messages, the persons interleaved in another random order."""
        return _interleave(random.Random(seed), self.per_person)

    @property
    def completed(self) -> dict[str, Settlement]:
        return {s.settlement_id: s for s in self.settlements}

    def expected(self) -> Expected:
        return Expected.of(self)


def generate(settlements: int, *, seed: int = 20261001, refund_share: float = 0.12,
             resettle_share: float = 0.5, filing_share: float = 0.5,
             persons: int | None = None, refund_first_share: float = 0.0,
             resettle_first_share: float = 0.0) -> Workload:
    """`settlements` settlement.submitted messages (re-settlements included), a refund for
    about `refund_share` of the originals and a re-settlement for `resettle_share` of those,
    all in October 2026; each person's events in order, persons interleaved at random.

    Out of order on purpose: `refund_first_share` of the refunds are sent before their
    settlement (the refund waits for it), and `resettle_first_share` of the re-settlements
    are sent once before their refund (refused: ``resettles_not_refunded``) and again, as a
    new message, after it."""
    rng = random.Random(seed)
    n_persons = persons or max(1, settlements // 3)
    per_person: dict[str, list[tuple[str, bytes]]] = defaultdict(list)
    work = Workload()
    people = []
    for p in range(n_persons):
        route = ROUTES[p % len(ROUTES)]
        insurance = "employee" if rng.random() < 0.7 else "resident"
        person = f"P{p:06d}-{route.insured_agency}"
        people.append((person, route, insurance))
        work.persons[person] = (route.insured_agency, insurance)
        if route.filing_destination and rng.random() < filing_share:
            filing = Filing(f"F{p:06d}", person, route, insurance)
            work.filings.append(filing)
            per_person[person].append(("filing.commands", filing.message()))
    serial = 0
    next_day: dict[str, int] = {}
    while len(work.settlements) < settlements:
        person, route, insurance = people[rng.randrange(n_persons)]
        day = next_day.get(person, 1)
        if day > 24:
            continue  # six stays a month at most: the annual cap stays far away
        next_day[person] = day + 4
        serial += 1
        admitted = date(2026, 10, day)
        discharged = admitted + timedelta(days=rng.randrange(3))
        settled = at(discharged, rng.randrange(8, 18), rng.randrange(60))
        amount = Decimal(rng.randrange(30_000, 1_200_000)) / 100
        request = (Decimal(rng.randrange(0, 200_000)) / 100
                   if insurance == "employee" and rng.random() < 0.6 else None)
        original = Settlement(f"S{serial:07d}", person, route, insurance, admitted, discharged,
                              settled, amount, request)
        work.settlements.append(original)
        per_person[person].append(("settlement.submissions", original.message()))
        if rng.random() >= refund_share or len(work.settlements) >= settlements:
            continue
        refunded_on = discharged + timedelta(days=1)
        refund = Refund(f"R{serial:07d}", original, at(refunded_on, 9, rng.randrange(60)))
        work.refunds.append(refund)
        refund_first = rng.random() < refund_first_share
        if refund_first:  # just before its settlement
            per_person[person].insert(len(per_person[person]) - 1,
                                      ("settlement.submissions", refund.message()))
        else:
            per_person[person].append(("settlement.submissions", refund.message()))
        if rng.random() < resettle_share:
            new_amount = round_fen(amount * Decimal(rng.randrange(50, 150)) / 100)
            again = Settlement(f"S{serial:07d}R", person, route, insurance, admitted, discharged,
                               at(refunded_on, 11, rng.randrange(60)), new_amount, request,
                               resettles=original.settlement_id)
            work.settlements.append(again)
            if not refund_first and rng.random() < resettle_first_share:
                early = envelope("settlement.submitted", again.data(),
                                 id=f"{again.message_id}-early",
                                 source=f"hospital/{route.hospital}", time=again.settled_at)
                per_person[person].insert(len(per_person[person]) - 1,
                                          ("settlement.submissions", early))
                work.rejected[again.settlement_id] = "resettles_not_refunded"
            per_person[person].append(("settlement.submissions", again.message()))
    work.per_person = dict(per_person)
    work.messages = _interleave(rng, per_person)
    return work


def _interleave(rng: random.Random, per_person: dict[str, list[tuple[str, bytes]]],
                ) -> list[Message]:
    """Merge the persons' queues at random, keeping each person's own order."""
    queues = {p: list(reversed(q)) for p, q in per_person.items() if q}
    weights = {p: len(q) for p, q in queues.items()}
    tickets = [p for p, n in weights.items() for _ in range(n)]
    rng.shuffle(tickets)
    out: list[Message] = []
    for person in tickets:
        topic, value = queues[person].pop()
        out.append((topic, person, value))
    return out


# ---- what the clearing service must produce ------------------------------------------------


@dataclass(frozen=True)
class Item:
    """A cross-region obligation: a settlement (+) or a refund (−) of cleared_amount."""

    settlement_id: str
    insured_agency: str
    care_agency: str
    signed: Decimal
    business_date: date
    kind: str  # "settlement" | "refund"


def checksum(items: list[Item]) -> str:
    """docs/clearing.md: sha256 over the sorted lines ``<settlement_id>:<signed fen>``."""
    lines = sorted(f"{i.settlement_id}:{int(i.signed * 100)}" for i in items)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _lines(agency: str, items: list[Item]) -> dict[str, dict[str, Any]]:
    lines: dict[str, dict[str, Any]] = defaultdict(lambda: {
        "receivable": ZERO, "receivable_count": 0, "payable": ZERO, "payable_count": 0})
    for item in items:
        if item.care_agency == agency:
            line = lines[item.insured_agency]
            line["receivable"] += item.signed
            line["receivable_count"] += 1
        else:
            line = lines[item.care_agency]
            line["payable"] += item.signed
            line["payable_count"] += 1
    return dict(lines)


@dataclass
class Expected:
    """The whole expected outcome of a workload, by addition over hand-computed amounts."""

    completed: dict[str, dict[str, str]]
    refunded: dict[str, dict[str, str]]
    items: list[Item]
    notices: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, work: Workload) -> Expected:
        completed = {s.settlement_id: s.expected.as_strings() for s in work.settlements}
        refunded = {r.refund_id: completed[r.original.settlement_id] for r in work.refunds}
        items: list[Item] = []
        for s in work.settlements:
            if s.cross_region:
                items.append(Item(s.settlement_id, s.route.insured_agency, s.route.care_agency,
                                  s.expected.cleared_amount, date.fromisoformat(s.settled_at[:10]),
                                  "settlement"))
        for r in work.refunds:
            s = r.original
            if s.cross_region:
                items.append(Item(s.settlement_id, s.route.insured_agency, s.route.care_agency,
                                  -s.expected.cleared_amount,
                                  date.fromisoformat(r.refunded_at[:10]), "refund"))
        by_id = {s.settlement_id: s for s in work.settlements}
        notices: dict[tuple[str, str], dict[str, Any]] = {}
        for s in work.settlements:
            if s.resettles and s.cross_region:
                original = by_id[s.resettles]
                new, old = s.expected, original.expected
                for agency in (s.route.insured_agency, s.route.care_agency):
                    notices[(agency, s.settlement_id)] = {
                        "original_settlement_id": original.settlement_id,
                        "original_cycle": original.settled_at[:7], "cycle": s.settled_at[:7],
                        "insured_agency": s.route.insured_agency,
                        "care_agency": s.route.care_agency,
                        "fund_pay": money(new.fund_pay - old.fund_pay),
                        "account_pay": money(new.account_pay - old.account_pay),
                        "cash_pay": money(new.cash_pay - old.cash_pay),
                        "cleared_amount": money(new.cleared_amount - old.cleared_amount),
                        "carried_into": None}
        return cls(completed, refunded, items, notices, dict(work.rejected))

    def agencies(self) -> list[str]:
        return sorted({i.care_agency for i in self.items} | {i.insured_agency for i in self.items})

    def of_agency(self, agency: str, items: list[Item] | None = None) -> list[Item]:
        return [i for i in (self.items if items is None else items)
                if agency in (i.care_agency, i.insured_agency)]

    def daily_reports(self) -> dict[tuple[str, str], dict[str, Any]]:
        """(agency, date) → the report's counterparts, count and checksum."""
        by_day: dict[date, list[Item]] = defaultdict(list)
        for item in self.items:
            by_day[item.business_date].append(item)
        reports = {}
        for day, items in sorted(by_day.items()):
            for agency in sorted({a for i in items for a in (i.care_agency, i.insured_agency)}):
                own = self.of_agency(agency, items)
                reports[(agency, day.isoformat())] = {
                    "counterparts": _normalise_lines(_lines(agency, own)),
                    "settlement_count": len(own), "checksum": checksum(own)}
        return reports

    def statements(self) -> dict[str, dict[str, Any]]:
        """agency → the statement of the cycle (every item is in it: no late item here)."""
        out = {}
        for agency in self.agencies():
            own = self.of_agency(agency)
            lines = _lines(agency, own)
            receivable = sum((line["receivable"] for line in lines.values()), ZERO)
            payable = sum((line["payable"] for line in lines.values()), ZERO)
            out[agency] = {
                "lines": _normalise_lines(lines), "receivable": money(receivable),
                "payable": money(payable), "adjustments": money(ZERO),
                "net": money(receivable - payable), "checksum": checksum(own)}
        return out

    def nets(self) -> dict[str, Decimal]:
        return {a: Decimal(s["net"]) for a, s in self.statements().items()}

    def instructions(self, cycle: str = CYCLE) -> dict[str, dict[str, str]]:
        """instruction_id → payer, payee, amount, due_on (netting through the hub)."""
        # the due dates of the working-day calendar (Sunday 15 November 2026 → Monday 16th)
        from services.clearing.domain.periods import (
            DISTRIBUTION_DAY,
            REMITTANCE_DUE_DAY,
            milestone,
        )
        pay_in = milestone(cycle, REMITTANCE_DUE_DAY).isoformat()
        pay_out = milestone(cycle, DISTRIBUTION_DAY).isoformat()
        out = {}
        for agency, net in sorted(self.nets().items()):
            if net < 0:
                out[f"NTI-{cycle}-{agency}-{HUB}"] = {
                    "payer": agency, "payee": HUB, "amount": money(-net), "due_on": pay_in}
            elif net > 0:
                out[f"NTI-{cycle}-{HUB}-{agency}"] = {
                    "payer": HUB, "payee": agency, "amount": money(net), "due_on": pay_out}
        return out

    def difference_notices(self) -> dict[tuple[str, str], dict[str, Any]]:
        """(agency, settlement_id) → the notice of a re-settlement: new − original, sent to
        both agencies; `carried_into` only when the original's cycle was already issued."""
        return self.notices

    def entries(self) -> Counter[tuple[str, str, str, str]]:
        """(ledger, kind, settlement_id, amount) of each journal entry the obligations post:
        one in the care agency's ledger and one in the insuring agency's; none for 0.00."""
        out: Counter[tuple[str, str, str, str]] = Counter()
        for item in self.items:
            if item.signed != ZERO:
                amount = money(abs(item.signed))
                out[(item.care_agency, item.kind, item.settlement_id, amount)] += 1
                out[(item.insured_agency, item.kind, item.settlement_id, amount)] += 1
        return out

    def balances(self, cleared_into_hub: bool) -> dict[tuple[str, str, str], str]:
        """(ledger, account, counterpart) → debit-positive balance, zeros left out; after the
        instructions (`cleared_into_hub`) each pair's balances have moved to the hub."""
        out: dict[tuple[str, str, str], Decimal] = defaultdict(lambda: ZERO)
        for i in self.items:
            out[(i.care_agency, "receivable", i.insured_agency)] += i.signed
            out[(i.care_agency, "advanced_to_hospitals", i.insured_agency)] -= i.signed
            out[(i.insured_agency, "benefit_expense", i.care_agency)] += i.signed
            out[(i.insured_agency, "payable", i.care_agency)] -= i.signed
        if cleared_into_hub:
            for key in [k for k in out if k[1] in ("receivable", "payable")]:
                out[key] = ZERO
            for agency, net in self.nets().items():
                if net > 0:
                    out[(agency, "receivable", HUB)] += net
                    out[(HUB, "payable", agency)] -= net
                elif net < 0:
                    out[(agency, "payable", HUB)] += net
                    out[(HUB, "receivable", agency)] -= net
        return {k: money(v) for k, v in sorted(out.items()) if v != ZERO}


def _normalise_lines(lines: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c: {k: money(v) if isinstance(v, Decimal) else v for k, v in line.items()}
            for c, line in sorted(lines.items())}


def as_of(moment: str) -> datetime:
    return datetime.fromisoformat(moment)
