"""Orders records read from several partitions by the log positions that markers name.

A *marker* is an event that cuts the service's inputs at its watermarks (for the clearing
service a ``calendar.day_started``: the end offset of every input partition when the day
began). Records before a marker's cut are applied before the marker, records past it after,
whatever order the partitions happen to be read in; so live processing and a replay of the
log apply exactly the same records in the same places.

Markers read but not acted on yet wait (table ``sequencer_markers``, in log order) until
every input has been read up to their watermarks (``sequencer_positions``). A record read

- before the cut of the first waiting marker precedes it: applied at once;
- past that cut comes after it: held back (``sequencer_deferred``) until the marker has
  acted, then looked at again;
- with no marker waiting (past the cut of every marker read), belongs after the last marker
  acted and before one not read yet. It is applied at once when the service says no marker
  still to come could change it (`Rules.decidable`); otherwise it is held back until a
  marker whose cut it precedes is read, or until a marker acted after which it is decidable.

Before any marker was read the same holds, and while none is on the log at all
(`markers_on_log`, e.g. `shared.messaging.topic_probe.TopicProbe`: a marker published later
cuts after what was written before it) records are applied as they are read. That answer
depends on when the service asked, not on the log alone, so each record applied because of
it is kept (``sequencer_unmarked``): a replay of the log asks those rows instead of the
broker (tools/audit/replay.py `LiveChoices`) and applies the same records at the same place.

Records of a partition are applied in offset order: once one is held back, those after it
on its partition wait behind it. Everything lives in the service's PostgreSQL schema, in
the same transaction as its other effects, so a crash or a redelivery changes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, Protocol

import asyncpg

from shared.events import Envelope
from shared.messaging.records import Incoming, Record

#: A marker's cut: topic → partition (as text) → the first offset past the cut.
Watermarks = Mapping[str, Mapping[str, int]]

#: Records held back are read back and looked at this many at a time.
PAGE = 1000


class Rules(Protocol):
    """What the service using a `Sequencer` tells it."""

    def decode(self, topic: str, value: bytes | None) -> Envelope[Any]:
        """Decode a record held back or a marker waiting (as the service reads its inputs)."""
        ...

    def watermarks(self, event: Envelope[Any]) -> Watermarks | None:
        """The cut of a marker; None for every other event."""
        ...

    async def decidable(self, event: Envelope[Any]) -> bool:
        """May this record, past the cut of every marker read, be applied now: no marker
        still to come would change what it decides, nor it what the marker decides?"""
        ...

    async def apply(self, event: Envelope[Any], record: Record | None) -> None:
        """Apply an input (with its record) or act on a marker (record None)."""
        ...


class Sequencer:
    """One transaction's worth of ordering. `load` it, `take` each fresh record in the order
    read, then `finish`; `observe` moves the cut by records that were not taken (duplicates,
    rejected records).

    `started`: the service acted on a marker before (its own state says so); `markers_on_log`
    answers, for a record the rules cannot decide before any marker was read, whether a
    marker may be on the log yet (None: assume one may). A record it answers "no" for is
    applied at once and kept in ``sequencer_unmarked``.
    """

    def __init__(self, conn: asyncpg.Connection, rules: Rules, *, started: bool,
                 positions: dict[tuple[str, int], int], waiting: list[Record],
                 held: set[tuple[str, int]],
                 markers_on_log: Callable[[Record], Awaitable[bool]] | None = None):
        self.conn, self.rules = conn, rules
        self.positions = positions
        self.waiting = waiting
        self._first_cut = self._cut(waiting[0]) if waiting else None
        #: Partitions with records held back (in the table or in `to_defer`).
        self.held = held
        self.started = started or bool(waiting)
        self._markers_on_log = markers_on_log
        self.to_defer: list[Record] = []
        #: Records applied in this transaction because no marker was on the log yet.
        self.unmarked: list[Record] = []
        #: The held records must be looked at again (the first waiting marker changed, or a
        #: marker acted). Not at the start: the transaction that left them held did.
        self.recheck = False

    @classmethod
    async def load(cls, conn: asyncpg.Connection, rules: Rules, *, started: bool,
                   markers_on_log: Callable[[Record], Awaitable[bool]] | None = None
                   ) -> Sequencer:
        return cls(conn, rules, started=started, positions=await _positions(conn),
                   waiting=await _waiting_markers(conn), held=await _held_partitions(conn),
                   markers_on_log=markers_on_log)

    @staticmethod
    async def observe(conn: asyncpg.Connection, records: Sequence[Record],
                      inputs: Collection[str]) -> bool:
        """Record how far `records` of the `inputs` topics moved the read positions; True
        when a marker waits that they may have completed (then `load` and `drain`)."""
        cut = [r for r in records if r.topic in inputs]
        if not cut:
            return False
        await _advance_positions(conn, cut)
        return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM sequencer_markers)"))

    async def take(self, incoming: Incoming) -> None:
        """A fresh record, in the order read: apply it now, or hold it back."""
        record, event = incoming.record, incoming.event
        cut = self.rules.watermarks(event)
        if cut is not None:
            await _add_marker(self.conn, record)
            self.started = True
            self.waiting.append(record)
            if len(self.waiting) == 1:
                self._first_cut = cut
                self.recheck = bool(self.held)
            await self.drain()
            return
        key = (record.topic, record.partition)
        self.positions[key] = max(self.positions.get(key, 0), record.offset + 1)
        if key not in self.held:
            first = self._first_cut
            if ((first is not None and not _past_cut(first, record))
                    or (first is None and await self._decidable(event, record))):
                await self.rules.apply(event, record)
                await self.drain()
                return
        self.to_defer.append(record)
        self.held.add(key)
        await self.drain()

    async def drain(self) -> None:
        """Apply the held records whose place is now known (or that no marker can change),
        and act on every waiting marker whose cut is reached, in order."""
        while True:
            if self.recheck:
                await self._release()
            if not (self._first_cut and _cut_reached(self._first_cut, self.positions)):
                return
            marker = self.waiting.pop(0)
            await self.rules.apply(self.rules.decode(marker.topic, marker.value), None)
            await _drop_marker(self.conn, marker)
            self._first_cut = self._cut(self.waiting[0]) if self.waiting else None
            self.recheck = bool(self.held)

    async def finish(self) -> None:
        """Write what was held back in this transaction, and what was applied because no
        marker was on the log."""
        await _defer(self.conn, self.to_defer)
        self.to_defer = []
        await _keep_unmarked(self.conn, self.unmarked)
        self.unmarked = []

    async def _release(self) -> None:
        """One pass over the held records in (topic, partition, offset) order: apply each
        that precedes the first waiting marker's cut or, with none waiting, is decidable
        now; the first one that must still wait stops its partition."""
        self.recheck = False
        await self.finish()
        first = self._first_cut
        after: tuple[str, int, int] = ("", -1, -1)
        still: set[tuple[str, int]] = set()
        while True:
            page = await _deferred(self.conn, after, PAGE)
            if not page:
                break
            released: list[Record] = []
            for held in page:
                key = (held.topic, held.partition)
                if key in still:
                    continue
                if first is not None and _past_cut(first, held):
                    still.add(key)  # after the waiting marker: looked at once it has acted
                    continue
                event = self.rules.decode(held.topic, held.value)
                if first is None and not await self._decidable(event, held):
                    still.add(key)
                    continue
                await self.rules.apply(event, held)
                released.append(held)
            await _drop_deferred(self.conn, released)
            last = page[-1]
            after = (last.topic, last.partition, last.offset)
            if (last.topic, last.partition) in still:
                after = (last.topic, last.partition, 2**62)  # skip the rest of it
        self.held = still

    async def _decidable(self, event: Envelope[Any], record: Record) -> bool:
        if await self.rules.decidable(event):
            return True
        # Before the first marker is read: one may still come first only if one is on the
        # log (a marker published later cuts after this record).
        if self.started or self._markers_on_log is None or await self._markers_on_log(record):
            return False
        self.unmarked.append(record)
        return True

    def _cut(self, marker: Record) -> Watermarks:
        cut = self.rules.watermarks(self.rules.decode(marker.topic, marker.value))
        assert cut is not None, f"record {marker.position} waits as a marker but is none"
        return cut


def _past_cut(cut: Watermarks, record: Record) -> bool:
    marks = cut.get(record.topic)
    if not marks:
        return False
    mark = marks.get(str(record.partition))
    return mark is not None and record.offset >= mark


def _cut_reached(cut: Watermarks, positions: dict[tuple[str, int], int]) -> bool:
    return all(positions.get((topic, int(partition)), 0) >= mark
               for topic, marks in cut.items()
               for partition, mark in marks.items() if mark > 0)


# ---- the tables (shared/db/migrations/003_sequencer.sql) ------------------------------------


def _record(row: asyncpg.Record) -> Record:
    return Record(row["topic"], row["partition"], row["offset"], None, bytes(row["value"]))


async def _positions(conn: asyncpg.Connection) -> dict[tuple[str, int], int]:
    rows = await conn.fetch("SELECT * FROM sequencer_positions")
    return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}


async def _advance_positions(conn: asyncpg.Connection, records: Sequence[Record]) -> None:
    latest: dict[tuple[str, int], int] = {}
    for r in records:
        key = (r.topic, r.partition)
        latest[key] = max(latest.get(key, 0), r.offset + 1)
    if latest:
        await conn.executemany(
            """INSERT INTO sequencer_positions VALUES ($1, $2, $3)
               ON CONFLICT (topic, "partition") DO UPDATE SET next_offset
                   = greatest(sequencer_positions.next_offset, excluded.next_offset)""",
            [(t, p, o) for (t, p), o in latest.items()])


async def _waiting_markers(conn: asyncpg.Connection) -> list[Record]:
    return [_record(r) for r in await conn.fetch("SELECT * FROM sequencer_markers ORDER BY seq")]


async def _add_marker(conn: asyncpg.Connection, record: Record) -> None:
    await conn.execute(
        """INSERT INTO sequencer_markers (topic, "partition", "offset", value)
           VALUES ($1, $2, $3, $4)""",
        record.topic, record.partition, record.offset, record.value)


async def _drop_marker(conn: asyncpg.Connection, record: Record) -> None:
    await conn.execute(
        """DELETE FROM sequencer_markers
           WHERE topic = $1 AND "partition" = $2 AND "offset" = $3""",
        record.topic, record.partition, record.offset)


async def _defer(conn: asyncpg.Connection, records: Sequence[Record]) -> None:
    """Hold records back (in one statement); a record held already stays as it is."""
    if records:
        await conn.execute(
            """INSERT INTO sequencer_deferred SELECT * FROM unnest($1::text[], $2::int[],
                   $3::bigint[], $4::bytea[]) ON CONFLICT DO NOTHING""",
            [r.topic for r in records], [r.partition for r in records],
            [r.offset for r in records], [r.value for r in records])


async def _keep_unmarked(conn: asyncpg.Connection, records: Sequence[Record]) -> None:
    if records:
        await conn.execute(
            """INSERT INTO sequencer_unmarked SELECT * FROM unnest($1::text[], $2::int[],
                   $3::bigint[]) ON CONFLICT DO NOTHING""",
            [r.topic for r in records], [r.partition for r in records],
            [r.offset for r in records])


async def _deferred(conn: asyncpg.Connection, after: tuple[str, int, int],
                    limit: int) -> list[Record]:
    """Records held back, in (topic, partition, offset) order, from just after `after`."""
    rows = await conn.fetch(
        """SELECT * FROM sequencer_deferred WHERE (topic, "partition", "offset") > ($1, $2, $3)
           ORDER BY topic, "partition", "offset" LIMIT $4""", *after, limit)
    return [_record(r) for r in rows]


async def _drop_deferred(conn: asyncpg.Connection, records: Sequence[Record]) -> None:
    if records:
        await conn.execute(
            """DELETE FROM sequencer_deferred d USING unnest($1::text[], $2::int[],
                   $3::bigint[]) AS r(topic, "partition", "offset")
               WHERE (d.topic, d."partition", d."offset") = (r.topic, r."partition", r."offset")
            """,
            [r.topic for r in records], [r.partition for r in records],
            [r.offset for r in records])


async def _held_partitions(conn: asyncpg.Connection) -> set[tuple[str, int]]:
    """The input partitions with records held back (their later records wait behind them)."""
    rows = await conn.fetch(
        """SELECT topic, "partition" FROM sequencer_positions i WHERE EXISTS (
               SELECT 1 FROM sequencer_deferred d WHERE d.topic = i.topic
                                                    AND d."partition" = i."partition")""")
    return {(r["topic"], r["partition"]) for r in rows}
