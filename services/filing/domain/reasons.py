"""Every reason the filing service gives for refusing a command: a stable code and a message.

Codes are part of what agencies and hospitals rely on (docs/filing.md lists them); messages
say what was wrong and what to do, filled in from the command.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.events.base import Reason


@dataclass(frozen=True)
class ReasonCode:
    """A documented rejection reason; calling it fills the message template."""

    code: str
    template: str

    def __call__(self, **values: Any) -> Reason:
        return Reason(code=self.code, message=self.template.format(**values)[:500])


# ---- who and where ------------------------------------------------------------------------
PERSON_REQUIRED = ReasonCode(
    "person_required",
    "the command names no person: set data.person_id or send it with the person id as the "
    "message key")
PERSON_MISMATCH = ReasonCode(
    "person_mismatch",
    "the command names person {given} but was sent for person {expected}; send it with the "
    "person id as the message key")
UNKNOWN_INSURED_AGENCY = ReasonCode(
    "unknown_insured_agency",
    "insured_agency {agency} is not a pool of the clearing house; use the code of the "
    "person's insuring pool")
UNKNOWN_DESTINATION = ReasonCode(
    "unknown_destination",
    "destination {destination} is not a known region code; use a GB/T 2260 province, city or "
    "county code")
UNKNOWN_HOSPITAL = ReasonCode(
    "unknown_hospital",
    "destination_hospital {hospital} is not a designated hospital; check the code or leave "
    "it out")
HOSPITAL_OUTSIDE_DESTINATION = ReasonCode(
    "hospital_outside_destination",
    "destination_hospital {hospital} lies in {county}, outside destination {destination}; "
    "name a hospital inside the destination")
DESTINATION_IN_OWN_POOL = ReasonCode(
    "destination_in_own_pool",
    "destination {destination} lies inside the person's own pool {agency}: care there needs "
    "no filing")
DESTINATION_HOSPITAL_REQUIRED = ReasonCode(
    "destination_hospital_required",
    "pool {agency} requires a referral filing to name one destination hospital; add "
    "destination_hospital")
DESTINATION_UNCHANGED = ReasonCode(
    "destination_unchanged",
    "filing {filing_id} already points to {destination} on {effective}; nothing to change")

# ---- category and materials ---------------------------------------------------------------
CATEGORY_NOT_ACCEPTED = ReasonCode(
    "category_not_accepted",
    "pool {agency} does not accept filings of category {category}")
CREDENTIAL_MISSING = ReasonCode(
    "credential_missing",
    "every filing needs a credential (e-voucher, ID or social security card); add "
    "\"credential\" to materials")
LONG_TERM_PROOF_MISSING = ReasonCode(
    "long_term_proof_missing",
    "a {category} filing needs one of relocation_proof, residence_proof or work_proof; add "
    "one, or file under commitment (承诺制)")
MATERNAL_HANDBOOK_MISSING = ReasonCode(
    "maternal_handbook_missing",
    "a childbirth filing needs the maternal health handbook (母子健康手册); add "
    "\"maternal_handbook\", or file under commitment (承诺制)")
REFERRAL_CERTIFICATE_MISSING = ReasonCode(
    "referral_certificate_missing",
    "a referral filing needs a referral certificate from a hospital entitled to refer; add "
    "\"referral_certificate\", or file under commitment (承诺制)")
COMMITMENT_NOT_ALLOWED = ReasonCode(
    "commitment_not_allowed",
    "pool {agency} does not accept commitment filings (承诺制) of category {category}; supply "
    "the materials now")
MATERIALS_NOT_OWED = ReasonCode(
    "materials_not_owed",
    "filing {filing_id} owes no materials; nothing to supply")
MATERIALS_INCOMPLETE = ReasonCode(
    "materials_incomplete",
    "filing {filing_id} still lacks {missing}; supply them together")

# ---- emergency ----------------------------------------------------------------------------
EMERGENCY_VISIT_REQUIRED = ReasonCode(
    "emergency_visit_required",
    "an emergency filing needs emergency_visit: \"outpatient\" or \"inpatient\"")
EMERGENCY_VISIT_NOT_ALLOWED = ReasonCode(
    "emergency_visit_not_allowed",
    "emergency_visit belongs to emergency filings only, not to category {category}; leave it "
    "out")

# ---- dates --------------------------------------------------------------------------------
DATES_OUT_OF_ORDER = ReasonCode(
    "dates_out_of_order",
    "valid_until {valid_until} is before valid_from {valid_from}")
VALIDITY_TOO_LONG = ReasonCode(
    "validity_too_long",
    "a {kind} filing of pool {agency} may run at most until {latest}; got valid_until "
    "{valid_until}")
VALID_FROM_TOO_EARLY = ReasonCode(
    "valid_from_too_early",
    "pool {agency} accepts retroactive filings (补办) at most {days} days back, until "
    "{earliest}; got valid_from {valid_from}: claim manual reimbursement instead")
EMERGENCY_FILING_LATE = ReasonCode(
    "emergency_filing_late",
    "a hospital files an emergency filing of pool {agency} within {days} working days of its "
    "first day {valid_from}, by {latest}: the person claims manual reimbursement at the "
    "insuring agency instead")
EFFECTIVE_IN_PAST = ReasonCode(
    "effective_in_past",
    "effective {effective} is before the request date {today}; changes take effect from the "
    "request date on")
EFFECTIVE_BEFORE_VALID_FROM = ReasonCode(
    "effective_before_valid_from",
    "effective {effective} is before filing {filing_id} starts on {valid_from}")

# ---- filings of the same person -----------------------------------------------------------
DUPLICATE_FILING_ID = ReasonCode(
    "duplicate_filing_id",
    "filing {filing_id} is already registered; use a new filing_id")
OVERLAPPING_FILING = ReasonCode(
    "overlapping_filing",
    "the dates overlap filing {other} ({other_from} to {other_until}); revoke it first or "
    "choose dates outside it")
UNKNOWN_FILING = ReasonCode(
    "unknown_filing",
    "filing {filing_id} is not registered for this person")
NOT_AN_EMERGENCY_FILING = ReasonCode(
    "not_an_emergency_filing",
    "filing {filing_id} is a {category} filing; only emergency filings are reviewed (核定)")
EMERGENCY_ALREADY_REVIEWED = ReasonCode(
    "emergency_already_reviewed",
    "emergency filing {filing_id} was already reviewed (approved: {approved}); a review is "
    "final: revoke the filing and have the hospital file again if it was wrong")
FILING_REVOKED = ReasonCode(
    "filing_revoked",
    "filing {filing_id} was revoked from {revoked_from}; register a new filing")
FILING_ENDED = ReasonCode(
    "filing_ended",
    "filing {filing_id} is no longer in force from {ends} on; register a new filing")
EXTENSION_NOT_ALLOWED = ReasonCode(
    "extension_not_allowed",
    "only referral filings can be extended (continuing referral care), where the pool allows "
    "it; filing {filing_id} is a {category} filing of pool {agency}")
EXTENSION_NOT_LATER = ReasonCode(
    "extension_not_later",
    "the new valid_until {valid_until} does not extend filing {filing_id}, which runs until "
    "{current}")

# ---- benefit status -----------------------------------------------------------------------
BENEFIT_TERMINATED = ReasonCode(
    "benefit_terminated",
    "the person's benefits with pool {agency} were terminated from {effective}; termination is "
    "final")

# ---- enrolment (参保登记) -------------------------------------------------------------------
PERSON_NOT_ENROLLED = ReasonCode(
    "person_not_enrolled",
    "person {person} is not enrolled with any pool on {on}; the insuring agency must send "
    "person.enrolled first")
ENROLMENT_MISMATCH = ReasonCode(
    "enrolment_mismatch",
    "{field} {given} disagrees with the enrolment registry, which has {registered} for person "
    "{person} on {on}; correct the command or the enrolment")
ALREADY_ENROLLED = ReasonCode(
    "already_enrolled",
    "person {person} is already enrolled with {agency} ({insurance_type}) since {since}; send "
    "person.insurance_changed for a change of scheme or pool")
ENROLMENT_UNCHANGED = ReasonCode(
    "enrolment_unchanged",
    "person {person} is already insured by {agency} as {insurance_type} on {effective}; "
    "nothing to change")
EFFECTIVE_BEFORE_LATEST = ReasonCode(
    "effective_before_latest",
    "effective {effective} is before the person's latest enrolment change, effective "
    "{latest}; enrolment changes are recorded in date order")
ACCOUNT_NOT_EMPLOYEE = ReasonCode(
    "account_not_employee",
    "person {person} is insured as {insurance_type} on {on}; only employees have a personal "
    "account")

ALL: tuple[ReasonCode, ...] = tuple(v for v in dict(globals()).values()
                                    if isinstance(v, ReasonCode))
