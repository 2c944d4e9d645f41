"""Tamper evidence: a hash chain per ledger over its postings, in sequence order.

Each link is ``sha256(previous link + canonical text of the posting)`` in hex; the first
posting follows `GENESIS`. Statements carry the head, so an agency holding a statement
can later prove that the ledger behind it was not rewritten.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import orjson

from services.clearing.domain.ledger import JournalEntry, Posting
from shared.money import to_fen

GENESIS = "0" * 64

_T = TypeVar("_T", Posting, JournalEntry)


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
    fields = [
        # the enums are StrEnums: orjson writes a member as its value (no `.value` look-ups)
        p.agency, p.sequence if sequence is None else sequence, p.entry_id, p.line,
        p.kind, p.account, p.counterpart, p.side, to_fen(p.amount),
        _utc_text(p.business_time),
        p.cycle, p.origin_cycle, p.cause.source, p.cause.id, p.settlement_id,
    ]
    # orjson writes exactly what json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    # wrote for these values (strings, integers, null), 4x faster; tests/unit/
    # test_chain_canonical.py compares the two over every code point and pins a link.
    return orjson.dumps(fields).decode()


#: The last time `_utc_text` wrote, and its text: an event's postings share one `datetime`.
_last_time: tuple[datetime, str] | None = None


def _utc_text(moment: datetime) -> str:
    """`moment` in UTC with microseconds and a "Z"; the same object → the same text, so the
    last answer is reused when asked about the very same object (identity, not equality)."""
    global _last_time
    last = _last_time
    if last is not None and last[0] is moment:
        return last[1]
    utc = moment.astimezone(UTC)
    # "+00:00" → "Z"; strftime's %Y does not pad years before 1000, isoformat does
    text = (utc.isoformat(timespec="microseconds")[:-6] + "Z" if utc.year >= 1000
            else utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    _last_time = (moment, text)
    return text


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
        sequence, link = head.sequence, head.link
        postings = []
        for posting in entry.postings:
            sequence += 1
            link = next_link(link, posting, sequence)
            postings.append(_with(posting, sequence=sequence, link=link))
        new_heads[entry.agency] = LedgerHead(sequence, link)
        # the entry was checked when built; sealing changes no agency, side or amount
        sealed.append(_with(entry, postings=tuple(postings)))
    return sealed, new_heads


def _with(frozen: _T, **changes: object) -> _T:
    """`dataclasses.replace` for `Posting` and `JournalEntry` (frozen, no slots, every field
    in `__init__`): the instance's fields with `changes`, without the generated `__init__`'s
    per-field `object.__setattr__` and without `JournalEntry.__post_init__`'s checks again."""
    copy = object.__new__(type(frozen))
    copy.__dict__.update(frozen.__dict__, **changes)
    return copy


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
