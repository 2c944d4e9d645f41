"""The enrolment import's pure parts: what a row becomes, its event id, the checkpoint."""

from __future__ import annotations

from pathlib import Path

from shared.events.enrolment import PersonEnrolled
from shared.reference import DEFAULT_DIRECTORY, load_reference
from tools.enrolment.importer import (
    BadRow,
    Progress,
    load_progress,
    parse_row,
    row_event_id,
    save_progress,
)

REF = load_reference(DEFAULT_DIRECTORY)
ROW = {"person_id": "P-1", "insured_agency": "220100", "insurance_type": "employee",
       "effective": "2026-01-01", "date_of_birth": "", "age_band": ""}


def test_a_good_row_is_a_person_enrolled() -> None:
    command = parse_row(ROW, REF)
    assert isinstance(command, PersonEnrolled)
    assert (command.person_id, command.insured_agency, command.date_of_birth) == (
        "P-1", "220100", None)


def test_a_bad_row_says_which_field_and_why() -> None:
    assert parse_row({**ROW, "insurance_type": "worker"}, REF).startswith(
        "insurance_type 'worker':")
    assert parse_row({**ROW, "effective": "2026-02-30"}, REF).startswith(
        "effective '2026-02-30':")
    assert parse_row({**ROW, "person_id": " "}, REF) == "person_id empty"
    assert "not a pool" in parse_row({**ROW, "insured_agency": "220300"}, REF)
    assert parse_row({**ROW, "insured_agency": "22010"}, REF).startswith("insured_agency")


def test_the_event_id_is_the_rows_content() -> None:
    data = parse_row(ROW, REF).model_dump(mode="json", exclude_none=True)
    assert row_event_id(data) == row_event_id(dict(reversed(list(data.items()))))
    changed = parse_row({**ROW, "insurance_type": "resident"}, REF)
    assert row_event_id(data) != row_event_id(changed.model_dump(mode="json",
                                                                 exclude_none=True))


def test_a_checkpoint_holds_only_for_the_bytes_it_covered(tmp_path: Path) -> None:
    path = tmp_path / "persons.csv"
    path.write_text("person_id,insured_agency,insurance_type,effective\nP-1,220100,employee,"
                    "2026-01-01\nP-2,220100,employee,2026-01-01\n", encoding="utf-8")
    first_rows = len(path.read_bytes().split(b"\n")[0]) + 1 + len(
        path.read_bytes().split(b"\n")[1]) + 1
    save_progress(path, Progress(offset=first_rows, line=2, sent=1, bad=[BadRow(9, "x")]))
    loaded = load_progress(path)
    assert loaded is not None and (loaded.line, loaded.sent, loaded.bad) == (
        2, 1, [BadRow(9, "x")])
    with path.open("a", encoding="utf-8") as handle:  # appending keeps the checkpoint
        handle.write("P-3,220100,employee,2026-01-01\n")
    assert load_progress(path) is not None
    path.write_text(path.read_text(encoding="utf-8").replace("P-1", "P-9"), encoding="utf-8")
    assert load_progress(path) is None  # a changed file starts over
