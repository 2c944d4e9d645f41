"""Compare a replay with the live system: state tables, published events, ledger chains.

Every difference names where it is (table or topic), the row or event (its key), the field
(a column, or a path into a JSON document such as ``state.cycles.2026-10.status``) and both
values. Lists are sorted, so the same inputs always give the same report.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import orjson

from services.clearing import queries
from services.clearing.queries import BrokenLink
from shared import topics
from shared.messaging.records import Record

#: Tables that are not state: the outbox is drained by the relay (the events are compared
#: instead), migrations are bookkeeping.
SKIPPED_TABLES = {"outbox", "schema_migrations"}
#: Columns that record wall-clock time or arrival order rather than content.
IGNORED_COLUMNS = {"processed_at", "rejected_at", "applied_at", "seq"}
#: Keys other than the primary key: postings are compared as sets keyed by their place in
#: their journal entry, without sequence and link (arrival order across partitions can
#: differ between live and replay); tables keyed by a serial are keyed by their content.
KEYS = {
    ("clearing", "postings"): ("agency", "entry_id", "line"),
    ("clearing", "results"): ("event_id",),
    ("clearing", "sequencer_markers"): ("topic", "partition", "offset"),
}
IGNORED = {("clearing", "postings"): {"sequence", "link"}}


@dataclass(frozen=True)
class Difference:
    """One thing that differs: `kind` is ``differs``, ``only_live`` or ``only_replay``."""

    area: str
    where: str
    key: dict[str, Any]
    kind: str
    field: str | None = None
    live: Any = None
    replay: Any = None

    def sort_key(self) -> tuple[str, str, str, str]:
        return (self.area, self.where, _dumps(self.key), self.field or "")


@dataclass
class TableSummary:
    table: str
    key: list[str]
    live_rows: int
    replay_rows: int
    live_checksum: str
    replay_checksum: str
    differing_rows: int = 0

    @property
    def match(self) -> bool:
        return self.live_checksum == self.replay_checksum and self.differing_rows == 0


@dataclass
class TopicSummary:
    topic: str
    published: int
    rebuilt: int
    #: Records published more than once with the same id and the same bytes (a relay that
    #: republished after a crash): harmless, counted for information.
    republished: int = 0
    differing: int = 0

    @property
    def match(self) -> bool:
        return self.differing == 0


@dataclass
class Comparison:
    tables: list[TableSummary] = field(default_factory=list)
    topics: list[TopicSummary] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)


# ---- values ---------------------------------------------------------------------------------


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def canonical(value: Any) -> Any:
    """A column value as plain JSON: money and times as strings, bytes as text."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return "\\x" + raw.hex()
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    return value


def json_differences(live: Any, replay: Any, path: str) -> list[tuple[str, Any, Any]]:
    """Leaf differences between two JSON values, as (path, live, replay)."""
    if isinstance(live, dict) and isinstance(replay, dict):
        found = []
        for k in sorted(set(live) | set(replay)):
            sub = f"{path}.{k}"
            if k not in live or k not in replay:
                found.append((sub, live.get(k), replay.get(k)))
            else:
                found += json_differences(live[k], replay[k], sub)
        return found
    if isinstance(live, list) and isinstance(replay, list) and len(live) == len(replay):
        return [d for n, (a, b) in enumerate(zip(live, replay, strict=True))
                for d in json_differences(a, b, f"{path}[{n}]")]
    return [] if live == replay else [(path, live, replay)]


# ---- state tables ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """How one state table is read and compared: its comparison key, the columns compared
    (all but the ignored ones) and which of them hold JSON."""

    schema: str
    name: str
    key: tuple[str, ...]
    columns: tuple[str, ...]
    jsonb: frozenset[str]

    @property
    def where(self) -> str:
        return f"{self.schema}.{self.name}"

    def select(self) -> str:
        return ", ".join(f'"{c}"::text AS "{c}"' if c in self.jsonb else f'"{c}"'
                         for c in self.columns)

    def key_text(self) -> str:
        """The key as SQL text: a JSON array, the same on both sides for the same values."""
        return "jsonb_build_array(" + ", ".join(f'"{c}"' for c in self.key) + ")::text"

    def row_text(self) -> str:
        """Every compared column as one text (a row value's text form: each field quoted as
        needed, NULL distinct from ''); jsonb prints in its normalised form."""
        return "ROW(" + ", ".join(f'"{c}"' for c in self.columns) + ")::text"


async def table_layouts(conn: asyncpg.Connection, schema: str) -> dict[str, Layout]:
    """Every state table of a schema (all but `SKIPPED_TABLES`) and how it is compared."""
    names = [r["relname"] for r in await conn.fetch(
        """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY c.relname""", schema)]
    layouts = {}
    for name in names:
        if name in SKIPPED_TABLES:
            continue
        columns = await conn.fetch(
            """SELECT column_name, data_type FROM information_schema.columns
               WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position""",
            schema, name)
        ignored = IGNORED_COLUMNS | IGNORED.get((schema, name), set())
        kept = tuple(c["column_name"] for c in columns if c["column_name"] not in ignored)
        primary = [r["attname"] for r in await conn.fetch(
            """SELECT a.attname FROM pg_index i
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
               WHERE i.indrelid = $1::regclass AND i.indisprimary
               ORDER BY array_position(i.indkey::int2[], a.attnum)""", f"{schema}.{name}")]
        key = KEYS.get((schema, name)) or tuple(primary)
        if not key or set(key) & ignored:
            key = kept
        jsonb = frozenset(c["column_name"] for c in columns
                          if c["data_type"] in ("jsonb", "json"))
        layouts[name] = Layout(schema, name, tuple(key), kept, jsonb)
    return layouts


def _row(layout: Layout, r: asyncpg.Record) -> dict[str, Any]:
    return {c: orjson.loads(r[c]) if c in layout.jsonb and r[c] is not None
            else canonical(r[c]) for c in layout.columns}


# ---- state tables, set-based ----------------------------------------------------------------
#
# State tables are compared without carrying every row into Python: the server hashes each
# row (its key as JSON text, sha256 of the text of every compared column) on both sides, the
# digests are compared, and only rows whose digest differs are read in full and compared
# field by field (`_row_differences`). The text of a row is at least as strict as the Python values:
# `numeric` keeps its scale ('1400.0' is not '1400.00'), jsonb its numbers exactly.


@dataclass
class Digests:
    """One table's rows as {key text: sha256 of the row's text}, and how many rows."""

    layout: Layout
    rows: dict[str, bytes]
    count: int

    def checksum(self) -> str:
        """sha256 over (key, row digest) in key order."""
        digest = hashlib.sha256()
        for k in sorted(self.rows):
            digest.update(k.encode() + b"\t" + self.rows[k] + b"\n")
        return digest.hexdigest()


async def prepare(conn: asyncpg.Connection) -> None:
    """Fix the session settings that the text of a value depends on (both sides alike)."""
    await conn.execute("""SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD';
                          SET IntervalStyle = 'postgres'; SET bytea_output = 'hex';
                          SET extra_float_digits = 1""")


async def table_digests(conn: asyncpg.Connection, schema: str) -> dict[str, Digests]:
    """Every state table of a schema as row digests (`prepare` the connection first)."""
    found = {}
    for name, layout in (await table_layouts(conn, schema)).items():
        rows = await conn.fetch(
            f"SELECT {layout.key_text()} AS k, "
            f"sha256(convert_to({layout.row_text()}, 'UTF8')) AS d "
            f'FROM "{schema}"."{name}"')
        digests = dict(rows)  # type: ignore[arg-type]
        if len(digests) < len(rows):  # rows sharing a comparison key: one digest of them all
            grouped: dict[str, list[bytes]] = defaultdict(list)
            for k, d in rows:
                grouped[k].append(d)
            digests = {k: ds[0] if len(ds) == 1 else hashlib.sha256(b"".join(sorted(ds))).digest()
                       for k, ds in grouped.items()}
        found[name] = Digests(layout, digests, len(rows))
    return found


async def _rows_by_key(conn: asyncpg.Connection, layout: Layout, keys: list[str]
                       ) -> dict[str, tuple[dict[str, Any], list[str]]]:
    """The rows with these key texts: {key: (the row's values, the text of every row with
    that key)}."""
    found: dict[str, tuple[dict[str, Any], list[str]]] = {}
    for r in await conn.fetch(
            f"SELECT {layout.select()}, {layout.key_text()} AS \"key text\", "
            f"{layout.row_text()} AS \"row text\" "
            f'FROM "{layout.schema}"."{layout.name}" WHERE {layout.key_text()} = ANY($1::text[]) '
            f'ORDER BY 1', keys):
        k = r["key text"]
        if k in found:
            found[k][1].append(r["row text"])
        else:
            found[k] = (_row(layout, r), [r["row text"]])
    return found


async def compare_table_digests(schema: str, live: dict[str, Digests],
                                replay: dict[str, Digests], live_conn: asyncpg.Connection,
                                replay_conn: asyncpg.Connection, result: Comparison) -> None:
    """Compare a schema's tables by their digests: rows that differ are read from both
    sides and their differences listed field by field (a difference only in the text,
    e.g. the scale of a number, as the row's text)."""
    for name in sorted(set(live) | set(replay)):
        a, b = live.get(name), replay.get(name)
        layout = (a or b).layout  # type: ignore[union-attr]
        where = layout.where
        rows_a, rows_b = (a.rows if a else {}), (b.rows if b else {})
        summary = TableSummary(where, list(layout.key), a.count if a else 0,
                               b.count if b else 0, a.checksum() if a else _EMPTY,
                               b.checksum() if b else _EMPTY)
        if rows_a != rows_b:
            differing = sorted(k for k in set(rows_a) | set(rows_b)
                               if rows_a.get(k) != rows_b.get(k))
            full_a = await _rows_by_key(live_conn, (a or b).layout, differing) if a else {}  # type: ignore[union-attr]
            full_b = await _rows_by_key(replay_conn, (b or a).layout, differing) if b else {}  # type: ignore[union-attr]
            for k in differing:
                row_a, texts_a = full_a.get(k, (None, []))
                row_b, texts_b = full_b.get(k, (None, []))
                some = row_a if row_a is not None else row_b
                named = {c: some[c] for c in layout.key} if some is not None else (
                    dict(zip(layout.key, orjson.loads(k), strict=True)))
                found = _row_differences(where, named, row_a, row_b, layout.key)
                if not found:
                    found = [Difference("table", where, named, "differs", "row text",
                                        "\n".join(texts_a), "\n".join(texts_b))]
                summary.differing_rows += 1
                result.differences += found
        result.tables.append(summary)


_EMPTY = hashlib.sha256().hexdigest()


def _row_differences(where: str, key: dict[str, Any], live: dict[str, Any] | None,
                     replay: dict[str, Any] | None, key_columns: Sequence[str]
                     ) -> list[Difference]:
    if live is None or replay is None:
        kind = "only_replay" if live is None else "only_live"
        return [Difference("table", where, key, kind, live=live, replay=replay)]
    found = []
    for column in live:
        if column in key_columns or live[column] == replay.get(column):
            continue
        for path, a, b in json_differences(live[column], replay.get(column), column):
            found.append(Difference("table", where, key, "differs", path, a, b))
    return found


# ---- published events -----------------------------------------------------------------------


@dataclass(frozen=True)
class Rebuilt:
    """An event the replay put in an audit outbox (not published)."""

    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, str], ...]


async def read_outbox(conn: asyncpg.Connection, schema: str, *,
                      rejected_only: bool = False) -> list[Rebuilt]:
    """The events a service's replay put in its outbox, in order (`rejected_only`: the
    dead-letter copies alone, when the contract topics are compared streaming)."""
    rows = await conn.fetch(
        f'SELECT topic, key, value, headers::text AS headers FROM "{schema}".outbox '
        + ("WHERE topic LIKE '%.rejected' " if rejected_only else "") + "ORDER BY seq")
    return [Rebuilt(r["topic"], r["key"], r["value"],
                    tuple(tuple(h) for h in orjson.loads(r["headers"]))) for r in rows]


def _event_id(value: bytes) -> str | None:
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return document.get("id") if isinstance(document, dict) else None


def compare_events(topic: str, rebuilt: Iterable[Rebuilt], published: Iterable[Record],
                   result: Comparison) -> None:
    """Contract events: same ids, byte-identical values, same Kafka keys."""
    live: dict[str, tuple[bytes | None, bytes]] = {}
    republished = 0
    for record in published:
        id_ = _event_id(record.value or b"") or record.position
        if id_ in live:
            republished += 1
            if live[id_] != (record.key, record.value):
                result.differences.append(Difference(
                    "event", topic, {"id": id_}, "differs", "published twice",
                    _text(live[id_][1]), _text(record.value or b"")))
            continue
        live[id_] = (record.key, record.value or b"")
    replay: dict[str, tuple[bytes | None, bytes]] = {}
    twice: list[Difference] = []
    for event in rebuilt:
        id_ = _event_id(event.value) or ""
        if id_ in replay:  # the live side publishes an event once: a second copy differs
            twice.append(Difference("event", topic, {"id": id_}, "differs", "rebuilt twice",
                                    _text(replay[id_][1]), _text(event.value)))
            continue
        replay[id_] = (event.key, event.value)
    summary = TopicSummary(topic, len(live), len(replay), republished, len(twice))
    result.differences += twice
    for id_ in sorted(set(live) | set(replay)):
        a, b = live.get(id_), replay.get(id_)
        found = _event_differences(topic, id_, a, b)
        summary.differing += bool(found)
        result.differences += found
    result.topics.append(summary)


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", "replace")


def _document(value: bytes) -> Any:
    """An event's JSON document; a record that is none (a tombstone, a stray record on an
    output topic) as its text, so that it is reported rather than abort the comparison."""
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return _text(value)


def _event_differences(topic: str, id_: str, live: tuple[bytes | None, bytes] | None,
                       replay: tuple[bytes | None, bytes] | None) -> list[Difference]:
    key = {"id": id_}
    if live is None or replay is None:
        kind = "only_replay" if live is None else "only_live"
        return [Difference("event", topic, key, kind,
                           live=_document(live[1]) if live else None,
                           replay=_document(replay[1]) if replay else None)]
    found = []
    if live[0] != replay[0]:
        found.append(Difference("event", topic, key, "differs", "kafka key",
                                _text(live[0]), _text(replay[0])))
    if live[1] != replay[1]:
        paths = json_differences(_document(live[1]), _document(replay[1]), "")
        found += [Difference("event", topic, key, "differs", path.lstrip("."), a, b)
                  for path, a, b in paths] or [Difference(
                      "event", topic, key, "differs", "bytes", _text(live[1]), _text(replay[1]))]
    return found


def compare_rejected(topic: str, rebuilt: Iterable[Rebuilt], published: Iterable[Record],
                     result: Comparison) -> None:
    """Dead-letter twins carry no event id: compare them as multisets of whole records."""
    def ident(key: bytes | None, value: bytes, headers: Iterable[tuple[str, Any]]) -> str:
        h = {k: v.decode("utf-8", "replace") if isinstance(v, bytes) else v for k, v in headers}
        return _dumps({"original": f"{h.get('original-topic')}/{h.get('original-partition')}"
                                   f"@{h.get('original-offset')}",
                       "reason_code": h.get("reason-code"), "reason": h.get("reason"),
                       "key": _text(key), "value": _text(value)})

    live = Counter(ident(r.key, r.value or b"", r.headers) for r in published)
    replay = Counter(ident(e.key, e.value, e.headers) for e in rebuilt)
    summary = TopicSummary(topic, sum(live.values()), sum(replay.values()))
    for record in sorted(set(live) | set(replay)):
        if live[record] != replay[record]:
            summary.differing += 1
            shown = orjson.loads(record)
            result.differences.append(Difference(
                "event", topic, {"original": shown["original"]}, "differs", "copies",
                {**shown, "copies": live[record]}, {**shown, "copies": replay[record]}))
    result.topics.append(summary)


def compared_topics(outputs: Iterable[str], rebuilt_topics: Iterable[str]) -> list[str]:
    """The topics a comparison looks at, in order: `outputs`, every dead-letter topic of a
    consumed one, and any other dead-letter topic the replay rebuilt records of."""
    return sorted(set(outputs) | set(REJECTED_TOPICS)
                  | {t for t in rebuilt_topics if t.endswith(".rejected")})


def compare_published(rebuilt: Iterable[Rebuilt], published: dict[str, list[Record]],
                      outputs: Iterable[str], result: Comparison, only: str | None = None
                      ) -> None:
    """The output topics and every dead-letter topic either side holds records of (`only`:
    that topic alone)."""
    by_topic: dict[str, list[Rebuilt]] = defaultdict(list)
    for event in rebuilt:
        by_topic[event.topic].append(event)
    for topic in compared_topics(outputs, by_topic):
        if only is not None and topic != only:
            continue
        records = published.get(topic, [])
        if topic.endswith(".rejected"):
            if records or by_topic.get(topic):
                compare_rejected(topic, by_topic.get(topic, []), records, result)
        else:
            compare_events(topic, by_topic.get(topic, []), records, result)


# ---- postings and chains --------------------------------------------------------------------


async def ledger_chains(conn: asyncpg.Connection) -> tuple[int, int, list[BrokenLink],
                                                           dict[tuple[str, str, int], int] | None]:
    """(postings, ledgers, first broken link of each broken chain, None): the chains are
    verified reading the postings in ledger order through a cursor, one at a time (the
    sequence of each posting, which the comparison needs, is read by `moved_postings`)."""
    if await conn.fetchval("SELECT to_regclass('clearing.postings')") is None:
        return 0, 0, [], None
    from services.clearing.domain.chain import GENESIS, next_link

    count, ledgers, broken = 0, 0, []
    agency: str | None = None
    previous, index, failed = GENESIS, 0, False
    async with conn.transaction(readonly=True):
        async for row in conn.cursor(
                'SELECT * FROM clearing.postings ORDER BY agency COLLATE "C", sequence',
                prefetch=2000):
            posting = queries.posting_of(row)
            count += 1
            if posting.agency != agency:
                agency, previous, index, failed = posting.agency, GENESIS, 0, False
                ledgers += 1
            index += 1
            if failed:
                continue
            if posting.sequence != index or posting.link != next_link(previous, posting):
                broken.append(BrokenLink(posting.agency, posting.sequence, posting.entry_id,
                                         posting.line))
                failed = True
                continue
            previous = posting.link
    return count, ledgers, broken, None


async def moved_postings(live: asyncpg.Connection, replay: asyncpg.Connection) -> int:
    """How many postings (agency, entry, line) of both sides sit at another sequence: both
    read in key order through cursors and merged, one posting at a time."""
    query = ("SELECT agency, entry_id, line, sequence FROM clearing.postings "
             'ORDER BY agency COLLATE "C", entry_id COLLATE "C", line')
    for conn in (live, replay):
        if await conn.fetchval("SELECT to_regclass('clearing.postings')") is None:
            return 0

    async def rows(conn: asyncpg.Connection) -> Any:
        async with conn.transaction(readonly=True):
            async for r in conn.cursor(query, prefetch=5000):
                yield (r["agency"], r["entry_id"], r["line"]), r["sequence"]

    moved = 0
    a, b = rows(live), rows(replay)
    x, y = await anext(a, None), await anext(b, None)
    while x is not None and y is not None:
        if x[0] == y[0]:
            moved += x[1] != y[1]
            x, y = await anext(a, None), await anext(b, None)
        elif x[0] < y[0]:
            x = await anext(a, None)
        else:
            y = await anext(b, None)
    for rest in (a, b):
        await rest.aclose()
    return moved


async def _grouped_digests(conn: asyncpg.Connection, layout: Layout) -> Any:
    """(key text, digest) of a table in key order (rows sharing a key: one digest of them
    all, as `table_digests` makes it), and the rows read, through a cursor."""
    query = (f"SELECT {layout.key_text()} AS k, "
             f"sha256(convert_to({layout.row_text()}, 'UTF8')) AS d "
             f'FROM "{layout.schema}"."{layout.name}" ORDER BY {layout.key_text()} COLLATE "C"')
    async with conn.transaction(readonly=True):
        key: str | None = None
        group: list[bytes] = []
        async for r in conn.cursor(query, prefetch=5000):
            if r["k"] != key and key is not None:
                yield key, group[0] if len(group) == 1 else hashlib.sha256(
                    b"".join(sorted(group))).digest(), len(group)
                group = []
            key = r["k"]
            group.append(bytes(r["d"]))
        if key is not None:
            yield key, group[0] if len(group) == 1 else hashlib.sha256(
                b"".join(sorted(group))).digest(), len(group)


async def compare_tables_streaming(schema: str, live_conn: asyncpg.Connection,
                                   replay_conn: asyncpg.Connection, result: Comparison) -> None:
    """`compare_table_digests` without holding a table: both sides' digests read in key
    order and merged; only the keys that differ are kept (and read in full)."""
    live_layouts = await table_layouts(live_conn, schema)
    replay_layouts = await table_layouts(replay_conn, schema)
    for name in sorted(set(live_layouts) | set(replay_layouts)):
        la, lb = live_layouts.get(name), replay_layouts.get(name)
        layout = la or lb
        assert layout is not None
        sums = [hashlib.sha256(), hashlib.sha256()]
        counts = [0, 0]
        differing: list[str] = []

        async def none() -> Any:
            return
            yield

        a = _grouped_digests(live_conn, la) if la else none()
        b = _grouped_digests(replay_conn, lb) if lb else none()

        def add(side: int, item: tuple[str, bytes, int], sums: list[Any] = sums,
                counts: list[int] = counts) -> None:
            sums[side].update(item[0].encode() + b"\t" + item[1] + b"\n")
            counts[side] += item[2]

        x, y = await anext(a, None), await anext(b, None)
        while x is not None or y is not None:
            if y is None or (x is not None and x[0] < y[0]):
                add(0, x)  # type: ignore[arg-type]
                differing.append(x[0])  # type: ignore[index]
                x = await anext(a, None)
            elif x is None or y[0] < x[0]:
                add(1, y)
                differing.append(y[0])
                y = await anext(b, None)
            else:
                add(0, x)
                add(1, y)
                if x[1] != y[1]:
                    differing.append(x[0])
                x, y = await anext(a, None), await anext(b, None)
        summary = TableSummary(layout.where, list(layout.key), counts[0], counts[1],
                               sums[0].hexdigest() if la else _EMPTY,
                               sums[1].hexdigest() if lb else _EMPTY)
        if differing:
            differing.sort()
            full_a = await _rows_by_key(live_conn, la, differing) if la else {}
            full_b = await _rows_by_key(replay_conn, lb, differing) if lb else {}
            for k in differing:
                row_a, texts_a = full_a.get(k, (None, []))
                row_b, texts_b = full_b.get(k, (None, []))
                some = row_a if row_a is not None else row_b
                named = {c: some[c] for c in layout.key} if some is not None else (
                    dict(zip(layout.key, orjson.loads(k), strict=True)))
                found = _row_differences(layout.where, named, row_a, row_b, layout.key)
                if not found:
                    found = [Difference("table", layout.where, named, "differs", "row text",
                                        "\n".join(texts_a), "\n".join(texts_b))]
                summary.differing_rows += 1
                result.differences += found
        result.tables.append(summary)


def chain_differences(where: str, broken: Sequence[BrokenLink]) -> list[Difference]:
    return [Difference("chain", f"hash chain ({where})", {"agency": b.agency}, "broken",
                       "first broken link",
                       live=asdict(b) if where == "live" else None,
                       replay=asdict(b) if where == "replay" else None) for b in broken]


def sorted_differences(found: Iterable[Difference]) -> list[Difference]:
    return sorted(found, key=Difference.sort_key)


OUTPUT_TOPICS = (topics.FILING_EVENTS, topics.SETTLEMENT_EVENTS, topics.CLEARING_RESULTS,
                 topics.REIMBURSEMENT_EVENTS)
#: The dead-letter twin of every consumed topic: compared whenever either side holds records
#: (a dead-letter record published live but not rebuilt is a difference too).
REJECTED_TOPICS = tuple(topics.rejected(t) for t in topics.CONSUMED)
