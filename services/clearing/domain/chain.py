"""Tamper evidence: a hash chain per ledger over its postings, in sequence order.

Each link is ``sha256(previous link + canonical text of the posting)`` in hex; the first
posting follows `GENESIS`. Statements carry the head, so an agency holding a statement
can later prove that the ledger behind it was not rewritten.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC

import orjson

from services.clearing.domain.ledger import JournalEntry, Posting
from shared.money import to_fen

GENESIS = "0" * 64


@dataclass(frozen=True)
class LedgerHead:
    """Where a ledger stands: its last sequence number and the link after that posting."""

    sequence: int = 0
    link: str = GENESIS


def canonical_text(posting: Posting, sequence: int | None = None) -> str:
    """The posting as a compact JSON array: the same bytes in any language, from a table row
    as from memory (amount in fen, time in UTC with microseconds). `sequence`, when given,
    stands for the posting's own (`seal` numbers and links a posting in one step)."""
    p = posting
    utc = p.business_time.astimezone(UTC)
    fields = [
        p.agency, p.sequence if sequence is None else sequence, p.entry_id, p.line,
        p.kind.value, p.account.value, p.counterpart, p.side.value, to_fen(p.amount),
        # "+00:00" → "Z"; strftime's %Y does not pad years before 1000, isoformat does
        utc.isoformat(timespec="microseconds")[:-6] + "Z" if utc.year >= 1000
        else utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        p.cycle, p.origin_cycle, p.cause.source, p.cause.id, p.settlement_id,
    ]
    # orjson writes exactly what json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    # wrote for these values (strings, integers, null), 4x faster; tests/unit/
    # test_chain_canonical.py compares the two over every code point and pins a link.
    return orjson.dumps(fields).decode()


def next_link(previous: str, posting: Posting, sequence: int | None = None) -> str:
    """The link after `posting` (its own `link` field is not part of the text)."""
    return hashlib.sha256(
        (previous + canonical_text(posting, sequence)).encode("utf-8")).hexdigest()


def seal(
    entries: Iterable[JournalEntry], heads: Mapping[str, LedgerHead],
) -> tuple[list[JournalEntry], dict[str, LedgerHead]]:
    """Append entries to their ledgers: number each posting and chain it to the one before.

    Returns the sealed entries and the heads after them; `heads` itself is not changed.
    """
    new_heads = dict(heads)
    sealed = []
    for entry in entries:
        head = new_heads.get(entry.agency, LedgerHead())
        postings = []
        for posting in entry.postings:
            sequence = head.sequence + 1
            link = next_link(head.link, posting, sequence)
            postings.append(dataclasses.replace(posting, sequence=sequence, link=link))
            head = LedgerHead(sequence, link)
        new_heads[entry.agency] = head
        sealed.append(JournalEntry(entry.entry_id, entry.agency, tuple(postings)))
    return sealed, new_heads


def verify_chain(postings: Sequence[Posting], previous: str = GENESIS) -> int | None:
    """The index of the first posting whose link, sequence or ledger does not follow from
    the one before it (or from `previous`), or None when the whole chain holds."""
    for index, posting in enumerate(postings):
        expected_sequence = (postings[0].sequence if previous != GENESIS else 1) + index
        if (posting.sequence != expected_sequence or posting.agency != postings[0].agency
                or posting.link != next_link(previous, posting)):
            return index
        previous = posting.link
    return None
