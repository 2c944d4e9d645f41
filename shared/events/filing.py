"""Filing commands (``filing.commands``) and filing results (``filing.events``)."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Literal

from pydantic import Field

from shared.events.base import Code, Payload, Reason, RegionCode


class InsuranceType(StrEnum):
    EMPLOYEE = "employee"
    RESIDENT = "resident"


class FilingCategory(StrEnum):
    RELOCATED_RETIREE = "relocated_retiree"
    LONG_TERM_RESIDENT = "long_term_resident"
    RESIDENT_WORKER = "resident_worker"
    CHILDBIRTH = "childbirth"
    REFERRAL = "referral"
    EMERGENCY = "emergency"
    TEMPORARY_OTHER = "temporary_other"


class Material(StrEnum):
    CREDENTIAL = "credential"
    RELOCATION_PROOF = "relocation_proof"
    RESIDENCE_PROOF = "residence_proof"
    WORK_PROOF = "work_proof"
    MATERNAL_HANDBOOK = "maternal_handbook"
    REFERRAL_CERTIFICATE = "referral_certificate"


class Channel(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"
    HOSPITAL = "hospital"


class BenefitStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    TERMINATED = "terminated"


EmergencyVisit = Literal["outpatient", "inpatient"]


class FilingRequested(Payload):
    TYPE = "filing.requested"
    filing_id: Code
    person_id: Code
    insured_agency: RegionCode
    insurance_type: InsuranceType
    category: FilingCategory
    destination: RegionCode
    destination_hospital: Code | None = None
    valid_from: date
    valid_until: date | None = None
    materials: list[Material] = Field(max_length=20)
    commitment: bool
    channel: Channel
    emergency_visit: EmergencyVisit | None = None


class RevokeFiling(Payload):
    """Command ``filing.revoked`` on ``filing.commands``."""

    TYPE = "filing.revoked"
    filing_id: Code
    effective: date
    person_id: Code | None = None


class ExtendFiling(Payload):
    """Command ``filing.extended`` on ``filing.commands``: continuing referral care."""

    TYPE = "filing.extended"
    filing_id: Code
    valid_until: date
    person_id: Code | None = None


class SupplyMaterials(Payload):
    TYPE = "filing.materials_supplied"
    filing_id: Code
    materials: list[Material] = Field(min_length=1, max_length=20)
    person_id: Code | None = None


class ChangeDestination(Payload):
    """Extension: change of destination (变更) of a filing in force, from ``effective`` on."""

    TYPE = "filing.destination_changed"
    filing_id: Code
    destination: RegionCode
    destination_hospital: Code | None = None
    effective: date
    person_id: Code | None = None


class ReviewEmergency(Payload):
    """Extension: the insuring agency's review (核定) of an emergency filing, command
    ``filing.emergency_reviewed`` on ``filing.commands`` (seed 003: 上传…核定，核定结果推送回医疗
    机构). A refused emergency settles as self-referred care (按自行就医待遇)."""

    TYPE = "filing.emergency_reviewed"
    filing_id: Code
    approved: bool
    person_id: Code | None = None


class ChangeBenefitStatus(Payload):
    TYPE = "benefit.status_changed"
    person_id: Code
    insured_agency: RegionCode
    status: BenefitStatus
    effective: date


# ---- results on filing.events -------------------------------------------------------------


class FilingRegistered(FilingRequested):
    TYPE = "filing.registered"
    requested_on: date
    #: None: in force until revoked (long term) or until discharge (emergency inpatient).
    valid_until: date | None = None
    #: For a commitment filing (承诺制): materials must arrive by this date.
    materials_due: date | None = None


class FilingRejected(Payload):
    TYPE = "filing.rejected"
    filing_id: Code | None = None
    person_id: Code | None = None
    reasons: list[Reason] = Field(min_length=1)
    #: Extension: the type of the command refused (``filing.requested``, ``filing.revoked`` …).
    command_type: str | None = None


class FilingRevoked(Payload):
    TYPE = "filing.revoked"
    filing_id: Code
    person_id: Code
    effective: date


class FilingEmergencyReviewed(Payload):
    """Extension: the review (核定) of an emergency filing, as recorded: approved or not."""

    TYPE = "filing.emergency_reviewed"
    filing_id: Code
    person_id: Code
    approved: bool
    reviewed_on: date


class FilingExtended(Payload):
    TYPE = "filing.extended"
    filing_id: Code
    person_id: Code
    valid_until: date


class FilingExpired(Payload):
    TYPE = "filing.expired"
    filing_id: Code
    person_id: Code
    expired_on: date


class FilingMaterialsOverdue(Payload):
    TYPE = "filing.materials_overdue"
    filing_id: Code
    person_id: Code
    due_on: date


class FilingMaterialsSupplied(Payload):
    TYPE = "filing.materials_supplied"
    filing_id: Code
    person_id: Code
    materials: list[Material]
    #: Extension: the business date the materials arrived; the filing counts again from it.
    supplied_on: date | None = None


class FilingDestinationChanged(ChangeDestination):
    TYPE = "filing.destination_changed"
    person_id: Code


class BenefitStatusChanged(ChangeBenefitStatus):
    TYPE = "benefit.status_changed"
