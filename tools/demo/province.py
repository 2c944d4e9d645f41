"""A province for the demo: insured persons, their filings, and a month of hospital
settlements, refunds and re-settlements, generated from the reference data.

Pure and seeded: no I/O, no clock. The same reference data, seed and sizes give the same
messages byte for byte. Messages are what outside parties publish, as CloudEvents JSON:
agencies' filing commands and hospitals' emergency filings on ``filing.commands``, and
hospitals' settlements and refunds on ``settlement.submissions``. Clearing answers
(confirmations, remittances) depend on the results and are made by `run`.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from shared import inbound, regions, topics
from shared.business_time import SHANGHAI
from shared.events.filing import FilingCategory
from shared.reference import Hospital, ReferenceData

DEFAULT_SEED = 20261001
DEFAULT_MONTH = "2026-10"

C = FilingCategory
#: How often each category is filed (relocated retirees are employees; residents draw
#: long-term residence instead).
CATEGORY_WEIGHTS = ((C.RELOCATED_RETIREE, 18), (C.LONG_TERM_RESIDENT, 14),
                    (C.RESIDENT_WORKER, 14), (C.CHILDBIRTH, 6), (C.REFERRAL, 20),
                    (C.EMERGENCY, 10), (C.TEMPORARY_OTHER, 18))
#: The proof each category needs besides the credential (DOMAIN.md, filing materials).
PROOF = {C.RELOCATED_RETIREE: "relocation_proof", C.LONG_TERM_RESIDENT: "residence_proof",
         C.RESIDENT_WORKER: "work_proof", C.CHILDBIRTH: "maternal_handbook",
         C.REFERRAL: "referral_certificate"}
OPEN_ENDED = (C.RELOCATED_RETIREE, C.LONG_TERM_RESIDENT, C.RESIDENT_WORKER, C.CHILDBIRTH)
#: Share of inpatient care among a category's hospital visits (the rest is outpatient).
INPATIENT_SHARE = {C.REFERRAL: 0.6, C.CHILDBIRTH: 0.45, C.TEMPORARY_OTHER: 0.3}
#: How much care a person needs in a month, relative to the others (None: no filing).
ACTIVITY = {C.RELOCATED_RETIREE: 3.0, C.LONG_TERM_RESIDENT: 3.0, C.RESIDENT_WORKER: 3.0,
            C.CHILDBIRTH: 2.0, C.REFERRAL: 2.5, C.TEMPORARY_OTHER: 1.0, C.EMERGENCY: 1.0,
            None: 1.0}

EMPLOYEE_SHARE = 0.6
UNFILED_SHARE = 0.15  # of the persons whose pool settles unfiled care directly
REFUSED_SHARE = 0.015  # filings sent without their proof: refused
COMMITMENT_SHARE = 0.05  # filings under commitment (承诺制), proof to follow
SUSPENDED_SHARE = 0.015  # long-term persons whose benefits are suspended mid-month
REFUND_SHARE = 0.02
RESETTLEMENT_SHARE = 0.01
NO_CAP = 10**9
REFUND_REASONS = ("收费项目错误 wrong items", "重复收费 charged twice",
                  "目录对照错误 catalogue mapping", "患者要求退费 patient request")
#: Profiles of the first persons, so that even a small province has every case.
FORCED = ((C.RELOCATED_RETIREE, ""), (C.LONG_TERM_RESIDENT, ""), (C.RESIDENT_WORKER, ""),
          (C.CHILDBIRTH, ""), (C.REFERRAL, ""), (C.EMERGENCY, "inpatient"),
          (C.EMERGENCY, "outpatient"), (C.TEMPORARY_OTHER, ""), (None, ""),
          (C.LONG_TERM_RESIDENT, "commitment"), (C.RELOCATED_RETIREE, "suspended"),
          (C.RESIDENT_WORKER, "refused"))


@dataclass(frozen=True)
class Message:
    """One record as its sender publishes it (topic without the namespace prefix)."""

    topic: str
    key: str
    type: str
    source: str
    id: str
    time: datetime
    value: bytes

    @property
    def day(self) -> date:
        """The Asia/Shanghai business date of the event."""
        return self.time.astimezone(SHANGHAI).date()


@dataclass(frozen=True)
class Person:
    """An insured person and the plan the generator made for them."""

    person_id: str
    insured_agency: str
    insurance_type: str
    #: The filing's category; None for a person travelling without a filing.
    category: str | None
    #: The pool where the person gets care.
    destination: str
    filing_id: str | None = None
    emergency_visit: str | None = None
    commitment: bool = False
    #: The filing lacks its proof and is meant to be refused.
    refused: bool = False
    suspended_from: date | None = None


@dataclass(frozen=True)
class Province:
    """Everything the demo publishes as outside parties, in publishing order."""

    seed: int
    month: str
    persons: tuple[Person, ...]
    #: Filing commands (and benefit suspensions), published before any settlement.
    filing_commands: tuple[Message, ...]
    #: Settlements, refunds and re-settlements in time order.
    submissions: tuple[Message, ...]
    refund_kinds: dict[str, int] = field(default_factory=dict)

    def outline(self) -> dict[str, Any]:
        """What was generated, for the summary."""
        types = Counter(m.type for m in self.submissions)
        resettlements = sum(b'"resettles"' in m.value for m in self.submissions)
        return {
            "persons": len(self.persons),
            "persons_enrolled": sum(m.type == "person.enrolled" for m in self.filing_commands),
            "persons_by_type": dict(sorted(Counter(p.insurance_type for p in self.persons)
                                           .items())),
            "filings_by_category": dict(sorted(Counter(p.category for p in self.persons
                                                       if p.category).items())),
            "unfiled_persons": sum(p.category is None for p in self.persons),
            "commitment_filings": sum(p.commitment for p in self.persons),
            "filings_meant_to_be_refused": sum(p.refused for p in self.persons),
            "suspensions": sum(p.suspended_from is not None for p in self.persons),
            "settlements": types["settlement.submitted"] - resettlements,
            "refunds": types["settlement.refund_requested"],
            "refund_kinds": dict(sorted(self.refund_kinds.items())),
            "resettlements": resettlements,
        }


@dataclass(frozen=True)
class _Month:
    first: date
    last: date
    next_first: date

    @classmethod
    def of(cls, month: str) -> _Month:
        year, number = (int(part) for part in month.split("-"))
        first = date(year, number, 1)
        next_first = date(year + number // 12, number % 12 + 1, 1)
        return cls(first, next_first - timedelta(days=1), next_first)


@dataclass
class _Plan:
    person: Person
    hospitals: list[Hospital]
    valid_from: date | None
    #: Care days: within the month and the filing's validity.
    first: date
    last: date
    weight: float
    #: At most this many settlements (a few for emergency filings).
    cap: int
    filing: dict[str, Any] | None = None
    filing_time: datetime | None = None
    filing_source: str = ""


@dataclass
class _Settlement:
    plan: _Plan
    hospital: Hospital
    visit_type: str
    settled_at: datetime
    care: dict[str, str]
    items: list[tuple[str, str, str, int]]
    disease_code: str | None
    account_fen: int | None
    completes: bool
    resettles: _Settlement | None = None
    settlement_id: str = ""


@dataclass
class _Refund:
    original: _Settlement
    refunded_at: datetime
    reason: str
    kind: str
    refund_id: str = ""


def generate(reference: ReferenceData, *, seed: int = DEFAULT_SEED, persons: int = 2000,
             settlements: int = 5000, month: str = DEFAULT_MONTH) -> Province:
    """A province of `persons` insured persons and about `settlements` settlements in
    `month` (``YYYY-MM``), refunds and re-settlements running into the next month."""
    if persons < 1 or settlements < 0:
        raise ValueError("the demo needs at least one person and no negative settlements")
    rng = random.Random(seed)
    calendar = _Month.of(month)
    world = _World(reference)
    plans = [_plan(rng, world, calendar, index) for index in range(persons)]
    visits = _settlements(rng, plans, settlements)
    refunds, resettlements = _corrections(rng, visits, calendar, settlements)
    filings = _stamp(sorted(_filing_messages(plans), key=lambda m: m[0]))
    submissions = _stamp(sorted(_submission_messages(world, visits + resettlements, refunds),
                                key=lambda m: m[0]), after=filings)
    # Every person is enrolled (参保登记) by the insuring agency before anything else.
    filing_commands = [*_enrolment_messages(plans, calendar), *filings]
    return Province(seed=seed, month=month, persons=tuple(p.person for p in plans),
                    filing_commands=tuple(filing_commands), submissions=tuple(submissions),
                    refund_kinds=dict(Counter(r.kind for r in refunds)))


# ---- persons and filings --------------------------------------------------------------------


class _World:
    """The pools and their hospitals, in a fixed order."""

    def __init__(self, reference: ReferenceData):
        self.reference = reference
        self.pools = sorted(reference.agencies)
        self.hospitals = {pool: [] for pool in self.pools}  # type: dict[str, list[Hospital]]
        for code in sorted(reference.hospitals):
            hospital = reference.hospitals[code]
            pool = reference.pool_covering(hospital.county)
            if pool is not None:
                self.hospitals[pool.code].append(hospital)
        #: Bigger pools list more hospitals: their number stands in for population.
        self.weights = [len(self.hospitals[p]) or 1 for p in self.pools]
        self.unfiled_pools = [p for p in self.pools if self._settles_unfiled(p)]
        self.serials: Counter[str] = Counter()

    def serial(self, series: str) -> int:
        """The next number of a series of ids (persons of a pool, a hospital's settlements)."""
        self.serials[series] += 1
        return self.serials[series]

    def elsewhere(self, pool: str, same_province: bool) -> list[str]:
        province = regions.province_of(pool)
        return [p for p in self.pools if p != pool and self.hospitals[p]
                and (regions.province_of(p) == province) == same_province]

    def _settles_unfiled(self, pool: str) -> bool:
        """The pool settles in-province care without a filing (Jilin: lowest tier)."""
        policy = self.reference.filing_policy(pool)
        return (policy is not None and policy.no_filing == "lowest_tier"
                and bool(self.elsewhere(pool, same_province=True)))


def _weighted(rng: random.Random, options: Sequence[Any], weights: Sequence[float]) -> Any:
    return rng.choices(options, weights=weights)[0]


def _plan(rng: random.Random, world: _World, month: _Month, index: int) -> _Plan:
    forced = FORCED[index] if index < len(FORCED) else None
    category, flag = forced if forced else (
        _weighted(rng, [c for c, _ in CATEGORY_WEIGHTS], [w for _, w in CATEGORY_WEIGHTS]), "")
    unfiled_pools = world.unfiled_pools
    if forced and category is None and unfiled_pools:
        pool = rng.choice(unfiled_pools)
    else:
        pool = _weighted(rng, world.pools, world.weights)
        if not forced and pool in unfiled_pools and rng.random() < UNFILED_SHARE:
            category = None
    if category is None and pool not in unfiled_pools:
        category = C.TEMPORARY_OTHER
    employee = category is C.RELOCATED_RETIREE or rng.random() < EMPLOYEE_SHARE
    if not forced:
        flag = ("refused" if category in PROOF and rng.random() < REFUSED_SHARE else
                "commitment" if category in PROOF and rng.random() < COMMITMENT_SHARE else
                "suspended" if category in OPEN_ENDED and rng.random() < SUSPENDED_SHARE else "")
    serial = world.serial(f"P-{pool}")
    person_id = f"P-{pool}-{serial:05d}"
    same = world.elsewhere(pool, same_province=True)
    other = world.elsewhere(pool, same_province=False)
    if category is None:
        destination = rng.choice(same)
    else:
        group = same if same and (not other or rng.random() < 0.5) else other
        destination = _weighted(rng, group, [len(world.hospitals[p]) for p in group])
    hospitals = world.hospitals[destination]
    treating = [h for h in hospitals if h.kind == "hospital"]
    named: Hospital | None = None
    emergency_visit = None
    if category is C.EMERGENCY:
        named = rng.choice(treating)
        emergency_visit = flag or rng.choice(("inpatient", "outpatient", "outpatient"))
        flag = ""
    elif category is C.REFERRAL:
        policy = world.reference.filing_policy(pool)
        if (policy is not None and policy.referral_requires_hospital) or rng.random() < 0.4:
            named = rng.choice([h for h in treating if h.level >= 2] or treating)
    days = (month.last - month.first).days
    suspended_from = (month.first + timedelta(days=rng.randint(5, days - 5))
                      if flag == "suspended" else None)
    person = Person(person_id=person_id, insured_agency=pool,
                    insurance_type="employee" if employee else "resident",
                    category=category.value if category else None, destination=destination,
                    emergency_visit=emergency_visit, commitment=flag == "commitment",
                    refused=flag == "refused", suspended_from=suspended_from)
    plan = _Plan(person=person, hospitals=[named] if named else hospitals, valid_from=None,
                 first=month.first, last=month.last, weight=rng.expovariate(1.0),
                 cap=NO_CAP)
    if category is not None:
        _file(rng, world, plan, category, named, month)
    plan.weight *= ACTIVITY[category]
    return plan


def _file(rng: random.Random, world: _World, plan: _Plan, category: FilingCategory,
          named: Hospital | None, month: _Month) -> None:
    """The person's filing: dates by category, materials, who files it."""
    person = plan.person
    valid_until: date | None = None
    if person.commitment:
        valid_from = requested = month.first - timedelta(days=rng.randint(3, 40))
    elif category in OPEN_ENDED:
        valid_from = month.first - timedelta(days=rng.randint(10, 500))
        requested = valid_from - timedelta(days=rng.randint(0, 7))
    elif category is C.EMERGENCY:
        valid_from = requested = month.first + timedelta(days=rng.randint(0, 24))
        if person.emergency_visit == "outpatient":
            valid_until = valid_from + timedelta(days=2)
        plan.cap = 1 if person.emergency_visit == "inpatient" else 3
    else:
        valid_from = month.first + timedelta(days=rng.randint(-60, 14))
        requested = valid_from - timedelta(days=rng.randint(0, 5))
    plan.valid_from = valid_from
    plan.first = max(month.first, valid_from)
    plan.last = min(month.last, valid_until or month.last)
    materials = ["credential"]
    if category in PROOF and not (person.commitment or person.refused):
        materials.append(PROOF[category])
    channel = "hospital" if named and category is C.EMERGENCY else rng.choice(
        ("online", "online", "offline"))
    if channel == "hospital":
        assert named is not None
        plan.filing_source = f"hospital/{named.code}"
        filing_id = f"F-{named.code}-{world.serial(f'F-{named.code}'):04d}"
        at = time(7, rng.randint(0, 59))
    else:
        plan.filing_source = f"agency/{person.insured_agency}"
        filing_id = f"F-{person.insured_agency}-{world.serial(f'F-{person.insured_agency}'):05d}"
        at = time(rng.randint(8, 16), rng.randint(0, 59))
    plan.person = dataclasses.replace(person, filing_id=filing_id)
    plan.filing_time = datetime.combine(requested, at, SHANGHAI)
    plan.filing = _drop_none({
        "filing_id": filing_id, "person_id": person.person_id,
        "insured_agency": person.insured_agency, "insurance_type": person.insurance_type,
        "category": category.value, "destination": person.destination,
        "destination_hospital": named.code if named else None,
        "valid_from": valid_from.isoformat(),
        "valid_until": valid_until.isoformat() if valid_until else None,
        "materials": materials, "commitment": person.commitment, "channel": channel,
        "emergency_visit": person.emergency_visit})


def _filing_messages(plans: list[_Plan]) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    out = []
    for n, plan in enumerate(plans):
        person = plan.person
        if plan.filing is not None and plan.filing_time is not None:
            out.append(((plan.filing_time, n, 0), _draft(
                topics.FILING_COMMANDS, "filing.requested", plan.filing_source,
                person.person_id, plan.filing_time, plan.filing, person.filing_id)))
        if person.suspended_from is not None:
            at = datetime.combine(person.suspended_from - timedelta(days=1), time(15), SHANGHAI)
            out.append(((at, n, 1), _draft(
                topics.FILING_COMMANDS, "benefit.status_changed",
                f"agency/{person.insured_agency}", person.person_id, at,
                {"person_id": person.person_id, "insured_agency": person.insured_agency,
                 "status": "suspended", "effective": person.suspended_from.isoformat()})))
    return out


def _enrolment_messages(plans: list[_Plan], month: _Month) -> list[Message]:
    """``person.enrolled`` of every person, effective from New Year's Day of the year
    before the month (before any filing or care), sent the day before that."""
    effective = date(month.first.year - 1, 1, 1)
    at = datetime.combine(effective - timedelta(days=1), time(9), SHANGHAI)
    out = []
    for index, plan in enumerate(plans):
        person = plan.person
        source = f"agency/{person.insured_agency}"
        data = {"person_id": person.person_id, "insured_agency": person.insured_agency,
                "insurance_type": person.insurance_type, "effective": effective.isoformat()}
        # Every fifth Shanxi resident is a 低保 person, whose agency pays medical assistance
        # (reference/settlement-policies/1401xx.toml); by position, so the month's random
        # draws stay what they were.
        if (person.insured_agency in ASSISTING_AGENCIES and person.insurance_type == "resident"
                and index % 5 == 0):
            data["assistance"] = "low_income"
        out.append(make_message(
            topics.FILING_COMMANDS, "person.enrolled", source, person.person_id, at,
            f"{person.insured_agency}-enrol-{person.person_id}", data))
    return out


#: Agencies whose policies pay medical assistance (医疗救助) in the demo.
ASSISTING_AGENCIES = frozenset({"140100", "140200"})


# ---- settlements ---------------------------------------------------------------------------


def _settlements(rng: random.Random, plans: list[_Plan], total: int) -> list[_Settlement]:
    """Spread `total` settlements over the persons who get care, heavier users more often."""
    active = [n for n, p in enumerate(plans) if not p.person.refused]
    counts: Counter[int] = Counter()
    remaining = total
    while remaining > 0 and active:
        for n in rng.choices(active, weights=[plans[n].weight for n in active], k=remaining):
            if counts[n] < plans[n].cap:
                counts[n] += 1
                remaining -= 1
        active = [n for n in active if counts[n] < plans[n].cap]
    visits = []
    for n in sorted(counts):
        plan = plans[n]
        span = (plan.last - plan.first).days
        days = sorted(plan.first + timedelta(days=rng.randint(0, span))
                      for _ in range(counts[n]))
        visits += [_visit(rng, plan, day) for day in days]
    return visits


def _visit(rng: random.Random, plan: _Plan, day: date) -> _Settlement:
    person = plan.person
    category = FilingCategory(person.category) if person.category else None
    hospital = _weighted(rng, plan.hospitals,
                         [1 if h.kind == "pharmacy" else 2 + h.level for h in plan.hospitals])
    share = rng.random()
    if hospital.kind == "pharmacy":
        visit_type = "pharmacy"
    elif category is C.EMERGENCY:
        visit_type = person.emergency_visit or "outpatient"
    elif share < INPATIENT_SHARE.get(category, 0.2):  # type: ignore[arg-type]
        visit_type = "inpatient"
    elif category in OPEN_ENDED and share > 0.9:
        visit_type = "chronic_outpatient"
    else:
        visit_type = "outpatient"
    stay = 0
    if visit_type == "inpatient":
        stay = rng.randint(2, 6) if category is C.CHILDBIRTH else rng.randint(1, 14)
        admitted = day - timedelta(days=stay)
        if category is C.EMERGENCY and plan.valid_from is not None:
            admitted = plan.valid_from
            day = min(plan.last, admitted + timedelta(days=stay))
        elif plan.valid_from is not None and admitted < plan.valid_from <= day:
            admitted = plan.valid_from
        care = {"admitted_on": admitted.isoformat(), "discharged_on": day.isoformat()}
        at = time(rng.randint(9, 16), rng.randint(0, 59))
    else:
        care = {"visit_date": day.isoformat()}
        at = time(rng.randint(8, 19), rng.randint(0, 59))
    items = _bill(rng, visit_type, stay, childbirth=category is C.CHILDBIRTH)
    employee = person.insurance_type == "employee"
    return _Settlement(
        plan=plan, hospital=hospital, visit_type=visit_type,
        settled_at=datetime.combine(day, at, SHANGHAI), care=care, items=items,
        disease_code=_disease_code(rng, visit_type, childbirth=category is C.CHILDBIRTH),
        account_fen=_account_request(rng, items) if employee else None,
        completes=person.suspended_from is None or day < person.suspended_from)


def _corrections(rng: random.Random, visits: list[_Settlement], month: _Month, total: int
                 ) -> tuple[list[_Refund], list[_Settlement]]:
    """About 2 % refunds (some not of the person's latest settlement, some across the month
    boundary, some after the month's statements) and about 1 % re-settlements."""
    candidates = [v for v in visits if v.completes and v.plan.person.suspended_from is None]
    if not candidates:
        return [], []
    wanted = min(len(candidates), max(4, round(total * REFUND_SHARE)))
    chosen = rng.sample(candidates, wanted)
    later: dict[str, list[_Settlement]] = {}
    for v in visits:
        later.setdefault(v.plan.person.person_id, []).append(v)
    kinds = ["after_statements", "month_boundary", "not_latest", "in_month"]
    refunds = []
    for n, original in enumerate(chosen):
        kind = kinds[n] if n < len(kinds) else _weighted(rng, kinds, (25, 15, 15, 45))
        refunds.append(_refund(rng, original, kind, later[original.plan.person.person_id],
                               month))
    # An emergency filing may have ended by then: those refunds stay refunds.
    resettling = [r for r in refunds if r.original.plan.person.category != C.EMERGENCY]
    count = min(len(resettling), max(2, round(total * RESETTLEMENT_SHARE)))
    # A refund after the statements is always settled again: its difference notice is
    # carried into the next month.
    late = [r for r in resettling if r.kind == "after_statements"][:1]
    others = [r for r in resettling if r not in late]
    picked = late + rng.sample(others, max(0, count - len(late)))
    resettlements = []
    for refund in picked:
        original = refund.original
        settled_at = refund.refunded_at + timedelta(minutes=rng.randint(20, 1440))
        resettlements.append(_Settlement(
            plan=original.plan, hospital=original.hospital, visit_type=original.visit_type,
            settled_at=settled_at, care=original.care, items=_correct(rng, original.items),
            disease_code=original.disease_code, account_fen=original.account_fen,
            completes=True, resettles=original))
    return refunds, resettlements


def _refund(rng: random.Random, original: _Settlement, kind: str,
            persons_visits: list[_Settlement], month: _Month) -> _Refund:
    """When the hospital refunds `original`, by kind of refund."""
    after = [v for v in persons_visits if v.settled_at > original.settled_at]
    if kind == "not_latest" and not after:
        kind = "in_month"
    if kind == "after_statements":
        day = month.next_first + timedelta(days=rng.randint(2, 5))
        at = datetime.combine(day, time(rng.randint(9, 17), rng.randint(0, 59)), SHANGHAI)
    elif kind == "month_boundary":
        at = datetime.combine(month.next_first, time(rng.randint(9, 11), rng.randint(0, 59)),
                              SHANGHAI)
    else:
        base = min(after, key=lambda v: v.settled_at).settled_at if kind == "not_latest" \
            else original.settled_at
        at = base + timedelta(minutes=rng.randint(60, 5 * 1440))
        if at.date() > month.last and kind == "in_month":
            kind = "month_boundary"
        if at.date() >= month.next_first + timedelta(days=1):
            at = datetime.combine(month.next_first, time(10, rng.randint(0, 59)), SHANGHAI)
            at = max(at, base + timedelta(minutes=1))
    return _Refund(original=original, refunded_at=at, reason=rng.choice(REFUND_REASONS),
                   kind=kind)


def _submission_messages(world: _World, settlements: list[_Settlement], refunds: list[_Refund]
                         ) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    """Drafts of every submission; settlement and refund ids follow time per hospital."""
    for s in sorted(settlements, key=lambda s: (s.settled_at, s.hospital.code,
                                                s.plan.person.person_id)):
        s.settlement_id = f"S-{s.hospital.code}-{world.serial(f'S-{s.hospital.code}'):06d}"
    for r in sorted(refunds, key=lambda r: (r.refunded_at, r.original.settlement_id)):
        hospital = r.original.hospital.code
        r.refund_id = f"R-{hospital}-{world.serial(f'R-{hospital}'):05d}"
    out = []
    for s in settlements:
        out.append(((s.settled_at, s.hospital.code, s.settlement_id), _draft(
            topics.SETTLEMENT_SUBMISSIONS, "settlement.submitted", f"hospital/{s.hospital.code}",
            s.plan.person.person_id, s.settled_at, _settlement_data(s), s.settlement_id)))
    for r in refunds:
        o = r.original
        out.append(((r.refunded_at, o.hospital.code, r.refund_id), _draft(
            topics.SETTLEMENT_SUBMISSIONS, "settlement.refund_requested",
            f"hospital/{o.hospital.code}", o.plan.person.person_id, r.refunded_at,
            inbound.refund_requested(
                refund_id=r.refund_id, settlement_id=o.settlement_id, hospital=o.hospital.code,
                person_id=o.plan.person.person_id, reason=r.reason,
                refunded_at=r.refunded_at.isoformat()), o.settlement_id)))
    return out


def _settlement_data(s: _Settlement) -> dict[str, Any]:
    person = s.plan.person
    return inbound.settlement_submitted(
        settlement_id=s.settlement_id, hospital=s.hospital.code, person_id=person.person_id,
        insured_agency=person.insured_agency, insurance_type=person.insurance_type,
        visit_type=s.visit_type, disease_code=s.disease_code, **s.care,
        settled_at=s.settled_at.isoformat(), emergency=person.category == C.EMERGENCY,
        referral=person.category == C.REFERRAL,
        items=[{"code": code, "name": name, "category": category, "amount": _money(fen)}
               for code, name, category, fen in s.items],
        personal_account_request=_money(s.account_fen) if s.account_fen else None,
        resettles=s.resettles.settlement_id if s.resettles else None)


# ---- bills ----------------------------------------------------------------------------------

Item = tuple[str, str, str, int, int]
"""code, name, category (A/B/C of the care-place catalogue), lowest and highest yuan."""

#: Charged per day of an inpatient stay.
DAILY: tuple[Item, ...] = (("S-WARD", "床位费", "A", 40, 150), ("S-NURSING", "护理费", "A", 20, 80))
INPATIENT: tuple[Item, ...] = (
    ("S-EXAM-CT", "CT检查", "A", 200, 900), ("S-EXAM-MRI", "磁共振检查", "B", 500, 1500),
    ("S-LAB", "化验费", "A", 80, 1500), ("S-ECG", "心电图", "A", 20, 80),
    ("S-310902001", "电子胃镜检查", "B", 300, 900), ("S-SURGERY", "手术费", "A", 800, 20000),
    ("S-ANESTHESIA", "麻醉费", "A", 300, 3000), ("S-TREATMENT", "治疗费", "A", 100, 3000),
    ("S-OXYGEN", "吸氧费", "A", 30, 400), ("X-J01DD04", "头孢曲松", "B", 50, 1500),
    ("X-J01CR02", "阿莫西林克拉维酸", "A", 30, 600), ("X-C10AA07", "瑞舒伐他汀", "B", 30, 300),
    ("X-B05BA01", "肠外营养液", "B", 200, 3000), ("X-N02BE01", "对乙酰氨基酚", "A", 5, 60),
    ("Z-GINKGO-INJ", "银杏叶提取物注射液", "B", 60, 900),
    ("Z-DANSHEN-INJ", "丹参注射液", "B", 50, 800),
    ("M-SUTURE", "缝合材料", "A", 50, 600), ("M-CATHETER", "导管", "B", 100, 1500),
    ("S-VIP-WARD", "特需病房", "C", 200, 2000), ("S-CARE-WORKER", "陪护费", "C", 100, 1500),
)
#: Costly items, each in a few stays only.
RARE: tuple[Item, ...] = (("X-L01FA01", "利妥昔单抗", "B", 2000, 15000),
                          ("M-CARDIAC-STENT", "冠脉支架", "B", 5000, 20000))
DELIVERY: Item = ("S-DELIVERY", "分娩费", "A", 800, 5000)
OUTPATIENT: tuple[Item, ...] = (
    ("S-REGISTRATION", "挂号费", "A", 5, 50), ("S-CONSULT", "诊查费", "A", 10, 100),
    ("S-EXAM-CT", "CT检查", "A", 200, 600), ("S-LAB", "化验费", "A", 30, 400),
    ("S-ULTRASOUND", "彩超检查", "A", 80, 300), ("S-310902001", "电子胃镜检查", "B", 300, 800),
    ("X-J01CR02", "阿莫西林克拉维酸", "A", 20, 120), ("X-C10AA07", "瑞舒伐他汀", "B", 30, 200),
    ("Z-LIANHUA", "连花清瘟胶囊", "B", 20, 90), ("S-ACUPUNCTURE", "针灸治疗", "B", 30, 200),
    ("S-PHYSIO", "康复理疗", "C", 50, 300),
)
CHRONIC: tuple[Item, ...] = (
    ("X-A10BA02", "二甲双胍", "A", 20, 200), ("X-C09CA01", "氯沙坦", "B", 30, 300),
    ("X-A10AE04", "甘精胰岛素", "B", 100, 600), ("X-C08CA01", "氨氯地平", "A", 15, 150),
    ("S-LAB", "化验费", "A", 30, 400), ("S-DIALYSIS", "血液透析", "A", 400, 1200),
    ("M-GLUCOSE-STRIP", "血糖试纸", "C", 40, 200), ("S-CONSULT", "诊查费", "A", 10, 100),
)
PHARMACY: tuple[Item, ...] = (
    ("X-A10BA02", "二甲双胍", "A", 20, 200), ("X-C08CA01", "氨氯地平", "A", 15, 150),
    ("X-J01CR02", "阿莫西林克拉维酸", "A", 20, 120), ("Z-LIUWEI", "六味地黄丸", "B", 20, 120),
    ("Z-LIANHUA", "连花清瘟胶囊", "B", 20, 90), ("X-R06AE07", "西替利嗪", "A", 10, 60),
    ("X-M01AE01", "布洛芬", "A", 8, 40), ("X-C10AA07", "瑞舒伐他汀", "B", 30, 200),
    ("M-GLUCOSE-STRIP", "血糖试纸", "C", 40, 200), ("X-HEALTH-SUPPL", "营养保健品", "C", 50, 400),
)
DISEASES = {"inpatient": ("I21.9", "I63.9", "J18.9", "K80.2", "S72.0", "C34.9", "K35.8"),
            "chronic_outpatient": ("E11.9", "I10", "N18.5"),
            "outpatient": ("J06.9", "K29.7", "M54.5")}


def _fen(rng: random.Random, item: Item, days: int = 1) -> int:
    """An amount in fen between the item's bounds, most often near the low end."""
    _, _, _, low, high = item
    spread = (high - low) * 100 * rng.randint(0, 1000) * rng.randint(0, 1000) // 1_000_000
    return (low * 100 + spread) * max(days, 1)


def _bill(rng: random.Random, visit_type: str, stay: int, *, childbirth: bool
          ) -> list[tuple[str, str, str, int]]:
    """1 to 20 items of a visit: (code, name, category, amount in fen)."""
    if visit_type == "inpatient":
        chosen = [(item, stay) for item in DAILY]
        extra = rng.sample(INPATIENT, rng.randint(2, 16))
        extra += [DELIVERY] if childbirth else [r for r in RARE if rng.random() < 0.04]
        chosen += [(item, 1) for item in extra]
    else:
        catalogue, most = {"pharmacy": (PHARMACY, 6), "chronic_outpatient": (CHRONIC, 8)}.get(
            visit_type, (OUTPATIENT, 8))
        chosen = [(item, 1) for item in rng.sample(catalogue, rng.randint(1, most))]
    return [(item[0], item[1], item[2], _fen(rng, item, days)) for item, days in chosen]


def _correct(rng: random.Random, items: list[tuple[str, str, str, int]]
             ) -> list[tuple[str, str, str, int]]:
    """The corrected bill of a re-settlement: an item dropped, or one charged less."""
    corrected = list(items)
    n = rng.randrange(len(corrected))
    code, name, category, fen = corrected[n]
    if len(corrected) > 1 and rng.random() < 0.5:
        del corrected[n]
    else:
        corrected[n] = (code, name, category, fen * rng.randint(70, 95) // 100)
    return corrected


def _disease_code(rng: random.Random, visit_type: str, *, childbirth: bool) -> str | None:
    if childbirth and visit_type == "inpatient":
        return "O80"
    codes = DISEASES.get(visit_type)
    return rng.choice(codes) if codes and (visit_type != "outpatient" or rng.random() < 0.3) \
        else None


def _account_request(rng: random.Random, items: list[tuple[str, str, str, int]]) -> int | None:
    """Employees often ask to pay part of the bill from their personal account."""
    if rng.random() > 0.6:
        return None
    fen = sum(item[3] for item in items) * rng.randint(5, 60) // 100
    return fen or None


# ---- envelopes ------------------------------------------------------------------------------

def _money(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def _drop_none(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


def _draft(topic: str, type_: str, source: str, key: str, at: datetime, data: dict[str, Any],
           subject: str | None = None) -> dict[str, Any]:
    return {"topic": topic, "key": key, "source": source, "type": type_, "time": at,
            "subject": subject, "data": data}


def make_message(topic: str, type_: str, source: str, key: str, at: datetime, event_id: str,
                 data: dict[str, Any], subject: str | None = None) -> Message:
    """A CloudEvents record as an outside party writes it (structured JSON, money as strings)."""
    value = inbound.envelope(type_, data, id=event_id, source=source, time=at.isoformat(),
                             subject=subject)
    return Message(topic=topic, key=key, type=type_, source=source, id=event_id, time=at,
                   value=value)


def event_id(source: str, serial: int) -> str:
    """``H220202001-000123``: the sender's code and its message number (unique per source)."""
    return f"{source.split('/', 1)[1]}-{serial:06d}"


def _stamp(drafts: list[tuple[tuple[Any, ...], dict[str, Any]]],
           after: Sequence[Message] = ()) -> list[Message]:
    """Envelopes in order, each id the next of its source."""
    counters = Counter(m.source for m in after)
    messages = []
    for _, d in drafts:
        counters[d["source"]] += 1
        messages.append(make_message(d["topic"], d["type"], d["source"], d["key"], d["time"],
                                     event_id(d["source"], counters[d["source"]]), d["data"],
                                     d["subject"]))
    return messages
