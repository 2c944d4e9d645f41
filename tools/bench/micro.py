"""CPU time per event of the services' hot path, without Kafka or PostgreSQL.

``python -m tools.bench.micro`` generates a province and a month (as `clearinghouse bench` does),
then runs the settlement service's and the clearing service's real `BatchProcessor` and
handlers over batches of 1,000 records against an in-memory stand-in for the database
(it answers the statements the two services make; rows are kept as the same JSON text
PostgreSQL would hand back). What remains is the Python CPU of the path: decode,
inbox claim bookkeeping, decisions, state (de)serialisation, answer encoding, logging,
outbox rows. Figures are CPU seconds (`time.process_time`) per event, best of `--repeat`,
so they hold up on a busy shared machine much better than wall-clock throughput.

Also times the pieces alone: `decode` of a submission and of a completion, `encode` of an
answer (make_event + Outgoing.event), the ledger's `canonical_text`, and the relay's drain
against a stub producer. ``--profile`` prints the top functions (cProfile) of each service.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import hashlib
import io
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from shared import topics
from shared.messaging import clients as kafka_clients
from shared.messaging.records import Outgoing, Record
from tools.bench import province as prov

BATCH = 1000


# ---- an in-memory stand-in for the two services' statements ---------------------------------


class FakeConn:
    """Answers the statements of the settlement and clearing services (and the backbone)."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[Any, Any]] = {}
        self.outbox: list[tuple[Any, ...]] = []

    def _t(self, name: str) -> dict[Any, Any]:
        return self.tables.setdefault(name, {})

    def transaction(self) -> contextlib.AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()  # type: ignore[return-value]

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        s = " ".join(sql.split())
        if s.startswith("INSERT INTO inbox"):
            inbox = self._t("inbox")
            out = []
            for key in zip(args[0], args[1], strict=True):
                if key not in inbox:
                    inbox[key] = True
                    out.append({"source": key[0], "id": key[1]})
            return out
        if s.startswith("SELECT person_id, state FROM persons"):
            t = self._t("persons")
            return [{"person_id": p, "state": t[p]} for p in args[0] if p in t]
        if s.startswith("SELECT person_id, view FROM filing_views"):
            t = self._t("filing_views")
            return [{"person_id": p, "view": t[p]} for p in args[0] if p in t]
        if s.startswith("INSERT INTO settlement_ids"):
            t = self._t("settlement_ids")
            for h, sid, p in zip(*args, strict=True):
                t.setdefault((h, sid), p)
            return [{"hospital": h, "settlement_id": sid, "person_id": t[(h, sid)]}
                    for h, sid in zip(args[0], args[1], strict=True)]
        if s.startswith("INSERT INTO filing_ids"):
            t = self._t("filing_ids")
            out = []
            for row in zip(*args, strict=True):
                t.setdefault(row[0], row)
                out.append(dict(zip(("filing_id", "person_id"), t[row[0]], strict=False)))
            return out
        if s.startswith("INSERT INTO results"):
            t = self._t("results")
            out = []
            for e in args[0]:
                if e not in t:
                    t[e] = True
                    out.append({"event_id": e})
            return out
        return []

    async def fetchval(self, sql: str, *args: Any) -> Any:
        s = " ".join(sql.split())
        if s.startswith("SELECT state FROM clearing_state"):
            return self._t("clearing_state").get(1)
        if s.startswith("SELECT document FROM items WHERE item_id"):
            return self._t("items").get(args[0])
        return None

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        return None

    async def execute(self, sql: str, *args: Any) -> str:
        s = " ".join(sql.split())
        if s.startswith("INSERT INTO persons"):
            self._t("persons").update(zip(args[0], args[1], strict=True))
        elif s.startswith("INSERT INTO filing_views"):
            self._t("filing_views").update(zip(args[0], args[1], strict=True))
        elif s.startswith("INSERT INTO clearing_state"):
            self._t("clearing_state")[1] = args[0]
        elif s.startswith("INSERT INTO items"):
            self._t("items").update(zip(args[0], args[11], strict=True))
        return "OK"

    async def executemany(self, sql: str, args: Sequence[Any]) -> None:
        return None

    async def copy_records_to_table(self, table: str, *, columns: Any, records: Any) -> None:
        rows = list(records)
        if table == "outbox":
            self.outbox.extend(rows)


class FakePool:
    def __init__(self) -> None:
        self.conn = FakeConn()

    def acquire(self) -> contextlib.AbstractAsyncContextManager[FakeConn]:
        @contextlib.asynccontextmanager
        async def cm():  # type: ignore[no-untyped-def]
            yield self.conn
        return cm()


# ---- the workload -------------------------------------------------------------------------


def _records(topic: str, pairs: Sequence[tuple[bytes | None, bytes]], start: int = 0,
             *, sign: bool = False) -> list[Record]:
    from shared.inbound import signature_headers

    return [Record(topic=topic, partition=0, offset=start + n, key=k, value=v,
                   headers=tuple(signature_headers(v)) if sign else (),
                   timestamp_ms=1_790_000_000_000)
            for n, (k, v) in enumerate(pairs)]


def _participant_keys(province: prov.Province, directory: Path) -> None:
    """Key pairs for the generated province's participants, for this run only."""
    from shared import participant_keys

    os.environ["CLEARINGHOUSE_PARTICIPANT_KEYS"] = str(directory / "participant-keys.toml")
    os.environ["CLEARINGHOUSE_PARTICIPANT_SECRETS"] = str(directory / "keys")
    participant_keys.ensure_key_pairs(participant_keys.participants(province.directory))


def _batches(records: list[Record], size: int = BATCH) -> list[list[Record]]:
    return [records[i:i + size] for i in range(0, len(records), size)]


def _cpu(fn: Callable[[], Any]) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def _best(fn_factory: Callable[[], Callable[[], Any]], repeat: int) -> float:
    return min(_cpu(fn_factory()) for _ in range(repeat))


async def _process_all(processor: Any, batches: list[list[Record]]) -> None:
    for batch in batches:
        await processor.process(batch)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.micro", description=__doc__)
    parser.add_argument("--persons", type=int, default=2000)
    parser.add_argument("--settlements", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="print cProfile top functions")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--kafka", action="store_true",
                        help="also time handing the settlement service's outbox records to "
                             "the local Kafka (a throwaway topic): FastStream's broker.publish "
                             "against the aiokafka producer's send, both then awaited together")
    parser.add_argument("--service-gc", action="store_true",
                        help="tune the garbage collector after set-up as a service process "
                             "does (gc.freeze(), thresholds 10,000/20/20); default: Python's")
    parser.add_argument("--digest", action="store_true",
                        help="print a sha256 over everything the two services wrote (outbox "
                             "records, person states, clearing state, items): equal digests "
                             "before and after a change mean byte-identical output")
    args = parser.parse_args(argv)

    from services.settlement.facts import Facts
    from services.settlement.handlers import SettlementHandler
    from shared.events import decode, encode
    from shared.logging import configure_logging
    from shared.messaging.processing import BatchProcessor, Verifier, tune_gc
    from shared.reference import load_reference
    from shared.signatures import header_value, verify

    # Log lines are written (and their cost counted) to /dev/null.
    devnull = open(os.devnull, "w")  # noqa: SIM115
    real_stderr, sys.stderr = sys.stderr, devnull
    try:
        configure_logging(args.log_level, service="micro")
    finally:
        sys.stderr = real_stderr

    work = Path(tempfile.mkdtemp(prefix="micro-"))
    province = prov.write_reference(work / "reference")
    people = prov.persons(province, args.persons)
    month = prov.month(province, people, args.settlements)
    facts = Facts(load_reference(province.directory))
    _participant_keys(province, work / "secrets")
    filing_records = _records(topics.FILING_EVENTS, [
        (k, v) for k, v in _registered(prov.filings(people))])
    pairs = [(s.key, s.value) for s in month.submissions]
    sign_started = time.process_time()
    submissions = _records(topics.SETTLEMENT_SUBMISSIONS, pairs, sign=True)
    sign_seconds = time.process_time() - sign_started
    n_sub = len(submissions)
    if args.service_gc:
        tune_gc()

    def settlement_run(verify: bool = True) -> tuple[Any, Callable[[], Any]]:
        pool = FakePool()
        processor = BatchProcessor(pool, SettlementHandler(facts),  # type: ignore[arg-type]
                                   verifier=Verifier(enabled=verify))
        asyncio.run(_process_all(processor, _batches(filing_records)))
        pool.conn.outbox.clear()
        return pool, lambda: asyncio.run(_process_all(processor, _batches(submissions)))

    # settlement: the whole batch path
    timings: dict[str, float] = {}
    runs = []
    for _ in range(args.repeat):
        pool, fn = settlement_run()
        runs.append(_cpu(fn))
    timings["settlement service, whole batch path"] = min(runs) / n_sub
    refused = [r for r in pool.conn.outbox if str(r[0]).endswith(".rejected")]
    assert not refused, f"{len(refused)} signed submissions were rejected: {refused[0][3]}"
    timings["  the same, signatures not verified (off)"] = _best(
        lambda: settlement_run(verify=False)[1], args.repeat) / n_sub
    timings["sign one submission (ce-jws), as a hospital does"] = sign_seconds / n_sub
    registry = Verifier().registry()
    timings["verify one submission's ce-jws"] = _best(lambda: lambda: [
        verify(r.value or b"", header_value(r.headers),
               orjson.loads(r.value or b"{}")["source"], registry, r.time)
        for r in submissions], args.repeat) / n_sub
    outbox = pool.conn.outbox
    events = [(r[1], r[2]) for r in outbox if r[0] == topics.SETTLEMENT_EVENTS]
    completions = _records(topics.SETTLEMENT_EVENTS, events)
    n_evt = len(completions)

    def clearing_fn() -> Callable[[], Any]:
        processor = BatchProcessor(FakePool(), _clearing_handler())  # type: ignore[arg-type]
        return lambda: asyncio.run(_process_all(processor, _batches(completions)))

    timings["clearing service, whole batch path"] = _best(clearing_fn, args.repeat) / n_evt
    if args.digest:
        clearing_pool = FakePool()
        asyncio.run(_process_all(BatchProcessor(clearing_pool, _clearing_handler()),  # type: ignore[arg-type]
                                 _batches(completions)))
        digest = hashlib.sha256()
        for row in [*outbox, *clearing_pool.conn.outbox]:
            digest.update(repr(row).encode())
        for conn in (pool.conn, clearing_pool.conn):
            for table in ("persons", "filing_views", "clearing_state", "items"):
                for key, value in sorted(conn.tables.get(table, {}).items()):
                    digest.update(repr((table, key, value)).encode())

    timings["decode settlement.submitted"] = _best(
        lambda: lambda: [decode(r.topic, r.value) for r in submissions], args.repeat) / n_sub
    timings["decode settlement.completed etc."] = _best(
        lambda: lambda: [decode(r.topic, r.value) for r in completions], args.repeat) / n_evt
    from services.clearing.handlers import decode_input
    timings["  as the clearing service reads them"] = _best(
        lambda: lambda: [decode_input(r.topic, r.value) for r in completions], args.repeat) / n_evt
    decoded = [decode(r.topic, r.value) for r in completions]
    timings["encode (Outgoing.event) of those"] = _best(
        lambda: lambda: [Outgoing.event(topics.SETTLEMENT_EVENTS, "k", e) for e in decoded],
        args.repeat) / n_evt
    assert all(encode(e) for e in decoded)

    from services.clearing.domain.chain import canonical_text
    from services.clearing.store import posting_of  # noqa: F401  (same module as the rows)
    postings = _postings(completions)
    if postings:
        timings[f"canonical_text per posting ({len(postings)})"] = _best(
            lambda: lambda: [canonical_text(p) for p in postings], args.repeat) / len(postings)

    timings["outbox relay drain per record (stub producer)"] = _relay(outbox, args.repeat)

    if args.kafka:
        for via in ("broker.publish", "producer.send", "broker.publish", "producer.send"):
            seconds = asyncio.run(_publish_cost(outbox, via))
            key = f"publish via {via} (local Kafka), per record"
            timings[key] = min(timings.get(key, seconds), seconds)

    print(f"{n_sub} submissions -> {n_evt} settlement.events; batches of {BATCH}; "
          f"best of {args.repeat}; CPU µs per event")
    for name, seconds in timings.items():
        print(f"  {name:<52} {seconds * 1e6:8.1f}")
    if args.digest:
        print(f"digest of all output: {digest.hexdigest()}")

    if args.profile:
        for label, factory in (("settlement", lambda: settlement_run()[1]),
                               ("clearing", clearing_fn)):
            fn = factory()
            profiler = cProfile.Profile()
            profiler.enable()
            fn()
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
            print(f"\n==== {label}: top functions by own time ====")
            print(out.getvalue()[:6000])
    return 0


def _clearing_handler() -> Any:
    """The clearing handler as the service builds it, with no calendar day on the log yet
    (as during the bench's throughput runs): every record is applied as it is read."""
    import inspect

    from services.clearing.handlers import ClearingHandler

    if "calendar_on_log" in inspect.signature(ClearingHandler).parameters:
        async def no_day() -> bool:
            return False
        return ClearingHandler(calendar_on_log=no_day)  # type: ignore[call-arg]
    return ClearingHandler()


def _registered(requests: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``filing.registered`` events as the filing service would publish them."""
    import orjson

    out = []
    for key, value in requests:
        doc = orjson.loads(value)
        data = doc["data"]
        reg = dict(data)
        reg["requested_on"] = "2026-09-01"
        doc |= {"type": "filing.registered", "source": "service/filing",
                "id": "reg-" + doc["id"], "data": reg}
        out.append((key, orjson.dumps(doc)))
    return out


def _postings(completions: list[Record]) -> list[Any]:
    from services.clearing.domain.decisions import on_settlement_completed
    from services.clearing.domain.ledger import EventRef
    from services.clearing.domain.state import ClearingState
    from shared.events import decode
    from shared.events.settlement import SettlementCompleted

    state = ClearingState()
    out = []
    for r in completions:
        event = decode(r.topic, r.value)
        if isinstance(event.data, SettlementCompleted) and not event.data.resettles:
            decision = on_settlement_completed(state, event.data,
                                               EventRef(event.source, event.id), None)
            state = decision.state
            out += decision.postings
    return out


async def _publish_cost(outbox: list[tuple[Any, ...]], via: str) -> float:
    """CPU seconds per record to publish `outbox` rows to a new topic and await them all
    (the relay's pattern), through FastStream or straight to aiokafka."""
    import uuid

    import orjson

    from infra.kafka import ensure_topics
    from shared.config import load_settings
    from shared.messaging.broker import make_broker, publish_record
    from shared.topics import TopicSpec

    settings = load_settings()
    topic = f"micro-{uuid.uuid4().hex[:12]}"
    await ensure_topics(settings.kafka_bootstrap_servers, [TopicSpec(topic, 6)])
    broker = make_broker(settings, client_id="bench-micro")
    await broker.connect()
    rows = [(key, value, {k: v for k, v in orjson.loads(headers)})
            for _, key, value, headers in outbox]
    try:
        start = time.process_time()
        futures = []
        for key, value, headers in rows:
            if via == "broker.publish":
                futures.append(await broker.publish(value, topic, key=key, headers=headers,
                                                    no_confirm=True))
            else:
                futures.append(await publish_record(broker, topic, value, key, headers))
        await asyncio.gather(*futures)
        return (time.process_time() - start) / len(rows)
    finally:
        await broker.stop()
        admin = kafka_clients.admin(settings.kafka_bootstrap_servers)
        await admin.start()
        try:
            await admin.delete_topics([topic])
        finally:
            await admin.close()


def _relay(outbox: list[tuple[Any, ...]], repeat: int) -> float:
    from shared.messaging.outbox import OutboxRelay

    class Conn:
        async def fetch(self, sql: str, limit: int) -> list[dict[str, Any]]:
            return [{"seq": n, "topic": t, "key": k, "value": v, "headers": h}
                    for n, (t, k, v, h) in enumerate(outbox[:limit])]

        async def execute(self, sql: str, *args: Any) -> None:
            return None

    async def publish(topic: str, value: bytes, key: bytes | None, headers: Any) -> Any:
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    async def drain() -> None:
        relay = OutboxRelay("", "micro", publish, batch_size=len(outbox))
        await relay.drain(Conn())  # type: ignore[arg-type]

    if not outbox:
        return 0.0
    return _best(lambda: lambda: asyncio.run(drain()), repeat) / len(outbox)


if __name__ == "__main__":
    sys.exit(main())
