"""Supervision (监管): a care-place agency stops direct settlement for a person found in
serious violation, from a time on, and lifts the stop (docs/filing.md, "Supervision").

Only the care-place agency itself may impose or lift its stop (the envelope's ``source`` is
``agency/<care_agency>``); the stop covers settlements at the hospitals of that agency's
region, and the settlement service refuses them with `person_under_supervision`.
"""

from __future__ import annotations

from services.filing.domain.reasons import (
    ALREADY_UNDER_SUPERVISION,
    NOT_UNDER_SUPERVISION,
    PERSON_MISMATCH,
    SOURCE_MISMATCH,
    UNKNOWN_CARE_AGENCY,
)
from services.filing.domain.state import PersonFilingState
from shared.events.base import Payload, Reason
from shared.events.filing import FilingRejected
from shared.events.supervision import SupervisionImposed, SupervisionLifted
from shared.filing_view import supervision
from shared.reference import ReferenceData

SupervisionCommand = SupervisionImposed | SupervisionLifted

def decide_supervision(state: PersonFilingState, command: SupervisionCommand, sender: str,
                       reference: ReferenceData) -> list[Payload]:
    """Accept the command as its event on ``filing.events``, or refuse it."""
    found: list[Reason] = []
    agency = command.care_agency
    if state.person_id is not None and command.person_id != state.person_id:
        found.append(PERSON_MISMATCH(given=command.person_id, expected=state.person_id))
    if reference.agency(agency) is None:
        found.append(UNKNOWN_CARE_AGENCY(agency=agency))
    elif sender != f"agency/{agency}":
        found.append(SOURCE_MISMATCH(source=sender, agency=agency))
    if not found:
        held = supervision(state, command.effective, agency)
        if isinstance(command, SupervisionImposed) and held is not None:
            found.append(ALREADY_UNDER_SUPERVISION(agency=agency, person=command.person_id,
                                                   since=held.effective.isoformat()))
        if isinstance(command, SupervisionLifted) and held is None:
            found.append(NOT_UNDER_SUPERVISION(agency=agency, person=command.person_id,
                                               at=command.effective.isoformat()))
    if found:
        return [FilingRejected(person_id=state.person_id or command.person_id, reasons=found,
                               command_type=command.TYPE)]
    return [command.model_copy()]
