"""The ledger hash chain's canonical bytes never change: links already stored (and the
chain heads on issued statements) must verify forever, whatever serialiser computes them."""

from __future__ import annotations

import dataclasses
import json
import random
from datetime import UTC, datetime
from decimal import Decimal

import orjson

from services.clearing.domain.chain import GENESIS, canonical_text, next_link, verify_chain
from services.clearing.domain.ledger import AccountKind, EntryKind, EventRef, Posting, Side
from shared.business_time import SHANGHAI

FIRST = "7cc734cd91a7090091679fc3f6852080446fc8b154a79bf9ffa6c1215fa3a927"
SECOND = "41b8c481f8c462b9751c6fa5cceaaa0b196d92c1cd6517b9f0af9a84009fef49"

PLAIN = Posting(
    agency="220200", entry_id="settlement:2026-10:220200:hospital/H1:e1", line=1,
    kind=EntryKind.SETTLEMENT, account=AccountKind.RECEIVABLE, counterpart="220100",
    side=Side.DEBIT, amount=Decimal("1000.00"),
    business_time=datetime(2026, 10, 3, 10, 0, 0, 123456, tzinfo=SHANGHAI),
    cycle="2026-10", origin_cycle="2026-10", cause=EventRef("hospital/H1", "e1"),
    settlement_id="S1", sequence=1)
#: Quotes, backslash, control characters, DEL, U+2028, CJK, an astral emoji, no settlement.
AWKWARD = Posting(
    agency="220200", entry_id='refund:2026-10:"吉林"\\\n\t\x01\x7f\u2028😀', line=2,
    kind=EntryKind.SETTLEMENT, account=AccountKind.RECEIVABLE, counterpart="220100",
    side=Side.CREDIT, amount=Decimal("-0.05"),
    business_time=datetime(2026, 10, 31, 23, 59, 59, tzinfo=SHANGHAI),
    cycle="2026-11", origin_cycle="2026-10", cause=EventRef("hospital/H中", "é1"),
    settlement_id=None, sequence=2)


def test_canonical_text_and_links_are_pinned() -> None:
    """Computed with the original `json.dumps(..., ensure_ascii=False)` implementation."""
    assert canonical_text(PLAIN) == (
        '["220200",1,"settlement:2026-10:220200:hospital/H1:e1",1,"settlement","receivable",'
        '"220100","debit",100000,"2026-10-03T02:00:00.123456Z","2026-10","2026-10",'
        '"hospital/H1","e1","S1"]')
    assert canonical_text(AWKWARD) == (
        '["220200",2,"refund:2026-10:\\"吉林\\"\\\\\\n\\t\\u0001\x7f\u2028😀",2,"settlement",'
        '"receivable","220100","credit",-5,"2026-10-31T15:59:59.000000Z","2026-11","2026-10",'
        '"hospital/H中","é1",null]')
    assert next_link(GENESIS, PLAIN) == FIRST
    assert next_link(FIRST, AWKWARD) == SECOND


def test_a_chain_with_the_pinned_links_verifies() -> None:
    linked = [dataclasses.replace(PLAIN, link=FIRST), dataclasses.replace(AWKWARD, link=SECOND)]
    assert verify_chain(linked) is None
    assert verify_chain([linked[0], dataclasses.replace(linked[1], link=FIRST)]) == 1


def test_orjson_writes_what_json_dumps_wrote_for_every_code_point() -> None:
    """The serialiser may change only if the bytes do not: every Unicode scalar value, in
    strings, next to integers (negative, large) and null."""
    scalars = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    for start in range(0, len(scalars), 2000):
        fields = ["".join(scalars[start:start + 2000]), 1, -5, 99_999_999_999_999, None, ""]
        assert orjson.dumps(fields) == json.dumps(
            fields, ensure_ascii=False, separators=(",", ":")).encode("utf-8"), start


def test_time_text_is_what_strftime_wrote() -> None:
    """Business times in UTC with microseconds, as ``strftime("%Y-%m-%dT%H:%M:%S.%fZ")``
    wrote them (which does not pad years before 1000 to four digits)."""
    rng = random.Random(5)
    for _ in range(5000):
        moment = datetime(rng.choice([rng.randint(1, 9999), rng.randint(1990, 2100)]),
                          rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23),
                          rng.randint(0, 59), rng.randint(0, 59),
                          rng.choice([0, rng.randint(0, 999_999)]), tzinfo=UTC)
        posting = dataclasses.replace(PLAIN, business_time=moment)
        written = orjson.loads(canonical_text(posting))[9]
        assert written == moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_numbering_and_linking_in_one_step_is_the_same() -> None:
    numbered = dataclasses.replace(AWKWARD, sequence=7)
    assert canonical_text(AWKWARD, 7) == canonical_text(numbered)
    assert next_link(FIRST, AWKWARD, 7) == next_link(FIRST, numbered)
