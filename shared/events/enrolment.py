"""Enrolment (参保登记): the insuring agencies' record of who is insured where.

Extension of the contract. Agencies send these on ``filing.commands`` (keyed by person id,
source ``agency/<code>``); the filing service keeps them as a registry and publishes each
accepted one, unchanged, on ``filing.events``; a refused one gets ``filing.rejected`` with
``command_type`` naming it. The same models serve both topics.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import AwareDatetime

from shared.events.base import Code, Payload, RegionCode
from shared.events.filing import InsuranceType
from shared.money import NonNegativeMoney


class LeftReason(StrEnum):
    DEATH = "death"
    EMIGRATION = "emigration"
    LAPSE = "lapse"


class PersonEnrolled(Payload):
    """A person is insured by `insured_agency` under `insurance_type` from `effective` on."""

    TYPE = "person.enrolled"
    person_id: Code
    insured_agency: RegionCode
    insurance_type: InsuranceType
    effective: date
    #: Where the policy needs the age (residents' children, retirees): either one.
    date_of_birth: date | None = None
    age_band: Code | None = None
    #: Extension: the person's medical-assistance category (医疗救助对象, such as
    #: ``low_income`` 低保 or ``extreme_poverty`` 特困), where the insuring agency's policy
    #: pays medical assistance for it (reference/settlement-policies, ``[other_payers]``).
    assistance: Code | None = None


class InsuranceChanged(Payload):
    """From `effective` on the person is insured by `insured_agency` under `insurance_type`:
    a change of scheme (employee ↔ resident), a transfer to another pool, or both."""

    TYPE = "person.insurance_changed"
    person_id: Code
    insured_agency: RegionCode
    insurance_type: InsuranceType
    effective: date


class PersonLeft(Payload):
    """From `effective` on the person is no longer insured by `insured_agency`."""

    TYPE = "person.left"
    person_id: Code
    insured_agency: RegionCode
    reason: LeftReason
    effective: date


class BalanceReported(Payload):
    """The employee's personal account (个人账户) held `balance` at `as_of`."""

    TYPE = "personal_account.balance_reported"
    person_id: Code
    insured_agency: RegionCode
    balance: NonNegativeMoney
    as_of: AwareDatetime


ENROLMENT_EVENTS: tuple[type[Payload], ...] = (PersonEnrolled, InsuranceChanged, PersonLeft,
                                               BalanceReported)
