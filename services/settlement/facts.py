"""The facts a settlement decision needs, looked up from reference data and the filing view.

Policies and catalogues are loaded once at start-up (and catalogues cached per county), so
a decision costs no file or database access.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

from services.settlement.domain.decisions import FilingFacts, HospitalFacts, SettlementContext
from services.settlement.domain.policy import Catalogue, PolicyError, load_catalogue, load_policies
from shared.business_time import business_date
from shared.enrolment import balance_at, span_on
from shared.events.filing import InsuranceType
from shared.events.settlement import SettlementSubmitted
from shared.filing_view import PersonFilings, benefit_status, filings_in_force
from shared.reference import ReferenceData


class Facts:
    def __init__(self, reference: ReferenceData, *, enrolment_check: bool = True):
        self.reference = reference
        #: Off only for the bench's comparison run (CLEARINGHOUSE_ENROLMENT_CHECK=off).
        self.enrolment_check = enrolment_check
        self.directory = Path(reference.directory)
        self.policies = load_policies(self.directory)
        self._catalogues: dict[str, Catalogue | None] = {}

    def catalogue(self, county: str) -> Catalogue | None:
        if county not in self._catalogues:
            try:
                self._catalogues[county] = load_catalogue(self.directory, county)
            except PolicyError:
                self._catalogues[county] = None
        return self._catalogues[county]

    def context(self, submitted: SettlementSubmitted, view: PersonFilings | None,
                care_on: date | None = None) -> SettlementContext:
        """The facts as of settled_at; the filings in force on `care_on` (`care_date`: the
        original settlement's date for a re-settlement), settled_at's date by default."""
        on = business_date(submitted.settled_at)
        filed_on = care_on or on
        agency = submitted.insured_agency
        registry: dict[str, Any] = {"enrolment_checked": self.enrolment_check}
        if self.enrolment_check and view is not None:
            registry |= {"enrolment": span_on(view.enrolment, on),
                         "assistance": view.enrolment.assistance,
                         "balance": balance_at(view.enrolment, submitted.settled_at, agency)}
        hospital = self.reference.hospital(submitted.hospital)
        if hospital is None:
            return SettlementContext(hospital=None, care_agency=None, policy=None,
                                     catalogue=None, **registry)
        care = self.reference.pool_covering(hospital.county)
        filings: tuple[FilingFacts, ...] = ()
        status = benefit_status(view, on, agency) if view is not None else None
        if view is not None:
            filings = tuple(FilingFacts(
                filing_id=found.filing_id, category=found.category,
                destination=found.destination,
                insurance_type=InsuranceType(_insurance_of(view, found.filing_id, submitted)),
                insured_agency=found.insured_agency,
                destination_hospital=found.destination_hospital,
                emergency_visit=found.emergency_visit,
                emergency_approved=found.emergency_approved)
                for found in filings_in_force(view, filed_on, agency))
        context = SettlementContext(
            hospital=HospitalFacts(code=hospital.code, county=hospital.county,
                                   level=hospital.level, county_area=hospital.county_area),
            care_agency=care.code if care else None,
            policy=self.policies.get(agency),
            catalogue=self.catalogue(hospital.county),
            filings=filings,
            **registry,
        )
        if status is not None:
            context = replace(context, benefit_status=status)
        return context


def _insurance_of(view: PersonFilings, filing_id: str, submitted: SettlementSubmitted) -> str:
    registered = view.filing(filing_id)
    return registered.insurance_type if registered else submitted.insurance_type.value
