"""Reason codes of the settlement service's decisions (listed with meanings in docs/settlement.md).

Codes are stable: hospitals and agencies match on them. Messages may change.
"""

from __future__ import annotations

# ---- settlement.rejected ------------------------------------------------------------------

#: The enrolment registry has the person insured nowhere on the business date of settled_at.
PERSON_NOT_ENROLLED = "person_not_enrolled"
#: The submission's insured_agency or insurance_type disagrees with the enrolment registry.
ENROLMENT_MISMATCH = "enrolment_mismatch"

#: Another settlement of the same hospital with this settlement_id was already completed.
DUPLICATE_SETTLEMENT_ID = "duplicate_settlement_id"
#: The settlement_id, `resettles` or refunded settlement_id begins with ``MR:``, the prefix of
#: manual reimbursements' records (accumulators.REIMBURSEMENT_PREFIX).
RESERVED_SETTLEMENT_ID = "reserved_settlement_id"
#: The hospital code is not in the reference data (hospitals.csv).
UNKNOWN_HOSPITAL = "unknown_hospital"
#: No agency covers the region where the hospital is.
UNKNOWN_CARE_AGENCY = "unknown_care_agency"
#: No settlement policy for the submission's insured_agency.
UNKNOWN_INSURED_AGENCY = "unknown_insured_agency"
#: No care-place catalogue, not even the default one.
NO_CATALOGUE = "no_catalogue"
#: The policy has no rule for this insurance type, visit type and hospital level.
NO_BENEFIT_RULE = "no_benefit_rule"
#: The care predates every tier table of the insuring agency's policy (effective_from).
NO_TIER_TABLE = "no_tier_table"
#: The insuring agency has suspended the person's benefits (待遇暂停).
BENEFIT_SUSPENDED = "benefit_suspended"
#: The insuring agency has terminated the person's benefits (待遇终止).
BENEFIT_TERMINATED = "benefit_terminated"
#: The care-place agency has stopped direct settlement for the person (supervision).
PERSON_UNDER_SUPERVISION = "person_under_supervision"
#: A manual reimbursement claim already reimbursed (reimbursement.rejected).
DUPLICATE_CLAIM = "duplicate_claim"
#: An inpatient settlement without admitted_on or discharged_on.
ADMISSION_DATES_MISSING = "admission_dates_missing"
#: admitted_on is after discharged_on.
ADMITTED_AFTER_DISCHARGE = "admitted_after_discharge"
#: An outpatient, pharmacy or chronic outpatient settlement without visit_date.
VISIT_DATE_MISSING = "visit_date_missing"
#: A care date lies after the business date (Asia/Shanghai) of settled_at.
DATE_AFTER_SETTLEMENT = "date_after_settlement"
#: No filing covers this care and the insuring agency does not settle unfiled care directly.
FILING_REQUIRED = "filing_required"
#: The person has filings in force, but none covers this hospital, and unfiled care is refused.
FILING_NOT_FOR_HOSPITAL = "filing_not_for_hospital"
#: A filing covering this hospital was registered for the other insurance type.
FILING_INSURANCE_TYPE_MISMATCH = "filing_insurance_type_mismatch"
#: A filing covering this hospital was registered by another insuring agency.
FILING_AGENCY_MISMATCH = "filing_agency_mismatch"
#: `resettles` names no settlement of this person.
RESETTLES_UNKNOWN = "resettles_unknown"
#: `resettles` names a settlement of another hospital.
RESETTLES_OTHER_HOSPITAL = "resettles_other_hospital"
#: `resettles` names a settlement that has not been refunded.
RESETTLES_NOT_REFUNDED = "resettles_not_refunded"
#: `resettles` names a settlement that was already settled again.
ALREADY_RESETTLED = "already_resettled"

# ---- settlement.refund_rejected -----------------------------------------------------------

#: The settlement was already refunded.
ALREADY_REFUNDED = "already_refunded"
#: The settlement was made by another hospital than the one asking for the refund.
REFUND_OTHER_HOSPITAL = "refund_other_hospital"
#: The settlement named by the refund was rejected: there is nothing to refund.
SETTLEMENT_REJECTED = "settlement_rejected"
#: refunded_at lies before the settlement's settled_at.
REFUND_BEFORE_SETTLEMENT = "refund_before_settlement"

# ---- held (no event; the handler keeps the refund and retries) ---------------------------

#: The refund names a settlement not decided yet.
SETTLEMENT_NOT_YET_KNOWN = "settlement_not_yet_known"

# ---- either (checked by the handler against the envelope) --------------------------------

#: The envelope's source is not the hospital named in the data: a hospital may only submit
#: and refund its own settlements.
SOURCE_MISMATCH = "source_mismatch"

SETTLEMENT_REJECTION_CODES = (
    SOURCE_MISMATCH, DUPLICATE_SETTLEMENT_ID, RESERVED_SETTLEMENT_ID, PERSON_NOT_ENROLLED, ENROLMENT_MISMATCH,
    UNKNOWN_HOSPITAL, UNKNOWN_CARE_AGENCY, UNKNOWN_INSURED_AGENCY,
    NO_CATALOGUE, NO_BENEFIT_RULE, NO_TIER_TABLE, BENEFIT_SUSPENDED, BENEFIT_TERMINATED,
    ADMISSION_DATES_MISSING, ADMITTED_AFTER_DISCHARGE, VISIT_DATE_MISSING,
    DATE_AFTER_SETTLEMENT, FILING_REQUIRED, FILING_NOT_FOR_HOSPITAL,
    FILING_INSURANCE_TYPE_MISMATCH, FILING_AGENCY_MISMATCH, RESETTLES_UNKNOWN,
    RESETTLES_OTHER_HOSPITAL, RESETTLES_NOT_REFUNDED, ALREADY_RESETTLED,
)
REFUND_REJECTION_CODES = (
    SOURCE_MISMATCH, RESERVED_SETTLEMENT_ID, ALREADY_REFUNDED, REFUND_OTHER_HOSPITAL,
    SETTLEMENT_REJECTED, REFUND_BEFORE_SETTLEMENT,
)
