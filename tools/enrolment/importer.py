"""Bulk enrolment: an insuring agency's CSV of insured persons, sent as ``person.enrolled``
commands on ``filing.commands`` (docs/enrolment.md).

No row is lost or applied twice: each row's event id is derived from the row itself, so
sending it again (a re-run, a resumed run) is a duplicate the filing service's inbox drops;
rows are sent with an idempotent producer and the checkpoint beside the file
(``<FILE>.progress``) only ever moves past rows Kafka acknowledged. A bad row is reported with
its line number and left out; the others go on.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from shared import inbound, topics
from shared.business_time import SHANGHAI
from shared.events.enrolment import PersonEnrolled
from shared.messaging import clients as kafka_clients
from shared.money import money_message
from shared.reference import ReferenceData

REQUIRED = ("person_id", "insured_agency", "insurance_type", "effective")
OPTIONAL = ("date_of_birth", "age_band", "assistance")
#: Rows acknowledged by Kafka between two checkpoints.
CHUNK = 5_000


@dataclass(frozen=True)
class BadRow:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class Progress:
    """What the checkpoint file holds: how far the file is sent, and the bad rows so far."""

    offset: int = 0  # bytes of the file fully sent (a line boundary)
    line: int = 1  # the last line sent (1: the header)
    sent: int = 0
    bad: list[BadRow] = field(default_factory=list)
    done: bool = False


@dataclass
class ImportResult:
    rows: int  # rows read this run (bad ones included)
    sent: int  # rows sent this run
    resumed_at: int | None  # the line a resumed run started after
    bad: list[BadRow]  # every bad row of the file, earlier runs' included
    seconds: float
    done: bool
    total_sent: int = 0

    @property
    def rows_per_s(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0


class ImportFailed(Exception):
    """The file cannot be imported at all (no header, missing columns)."""


def checkpoint_path(path: Path) -> Path:
    return path.with_name(path.name + ".progress")


def row_event_id(data: dict[str, Any]) -> str:
    """The event id of a row: a hash of its content (the same row, the same id)."""
    canonical = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    return "enrol-" + hashlib.sha256(canonical).hexdigest()[:32]


def parse_row(row: dict[str, str], reference: ReferenceData | None) -> PersonEnrolled | str:
    """The command a row stands for, or what is wrong with it."""
    data = {k: v.strip() for k, v in row.items() if k in REQUIRED + OPTIONAL and v and v.strip()}
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        return f"{', '.join(missing)} empty"
    try:
        command = PersonEnrolled.model_validate(data, strict=False)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"{where} {data.get(where, '')!r}: {money_message(first) or first['msg']}"
    if reference is not None and reference.agency(command.insured_agency) is None:
        return (f"insured_agency {command.insured_agency} is not a pool of the clearing house "
                "(reference/agencies.toml)")
    return command


class _Lines:
    """The file's lines (bytes) from where the handle stands, with the offset after each."""

    def __init__(self, handle: io.BufferedReader):
        self.handle = handle
        self.offset = handle.tell()

    def __iter__(self) -> Iterator[bytes]:
        for raw in self.handle:
            self.offset += len(raw)
            yield raw


def _prefix_sha(path: Path, offset: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        remaining = offset
        while remaining:
            block = handle.read(min(remaining, 1 << 20))
            if not block:
                break
            digest.update(block)
            remaining -= len(block)
    return digest.hexdigest()


def load_progress(path: Path) -> Progress | None:
    """The checkpoint of an earlier run on this very file (the bytes it covered unchanged)."""
    saved = checkpoint_path(path)
    if not saved.exists():
        return None
    document = json.loads(saved.read_text(encoding="utf-8"))
    if document.get("sha256") != _prefix_sha(path, document["offset"]):
        return None  # the file changed under the checkpoint: start again
    return Progress(offset=document["offset"], line=document["line"], sent=document["sent"],
                    bad=[BadRow(b["line"], b["message"]) for b in document["bad"]],
                    done=document.get("done", False))


def save_progress(path: Path, progress: Progress) -> None:
    document = {"file": str(path), "offset": progress.offset, "line": progress.line,
                "sent": progress.sent, "done": progress.done,
                "sha256": _prefix_sha(path, progress.offset),
                "bad": [{"line": b.line, "message": b.message} for b in progress.bad]}
    target = checkpoint_path(path)
    temporary = target.with_name(target.name + ".tmp")
    temporary.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    temporary.replace(target)


async def import_file(path: Path, *, bootstrap: str, prefix: str = "",
                      reference: ReferenceData | None = None, restart: bool = False,
                      max_rows: int | None = None, now: Callable[[], datetime] | None = None,
                      on_progress: Callable[[int, int, int], None] | None = None,
                      signer: Any = None) -> ImportResult:
    """Send the rows of `path` (from the checkpoint on, unless `restart`); `max_rows` stops
    after that many rows (a trial load; the next run resumes). `on_progress(bytes done,
    rows sent, bad rows)` follows the run. Each row is signed by its agency with `signer`
    (default: the installation's keys, shared.participant_keys)."""
    started = time.monotonic()
    clock = now or (lambda: datetime.now(SHANGHAI))
    progress = None if restart else load_progress(path)
    resumed_at = progress.line if progress is not None and progress.offset else None
    progress = progress or Progress()
    if progress.done:
        return ImportResult(0, 0, resumed_at, progress.bad, 0.0, True, progress.sent)
    producers: dict[str, Any] = {}
    topic = prefix + topics.FILING_COMMANDS
    rows = sent = 0
    seen: dict[str, int] = {}
    try:
        with path.open("rb") as handle:
            header_line = handle.readline().decode("utf-8-sig")
            header = next(csv.reader([header_line]), [])
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise ImportFailed(f"{path}: line 1 (the header) lacks column(s) "
                                   f"{', '.join(missing)}; it must name {', '.join(REQUIRED)} "
                                   f"(optional: {', '.join(OPTIONAL)})")
            if progress.offset:
                handle.seek(progress.offset)
            else:
                progress.offset = handle.tell()
            lines = _Lines(handle)
            line = progress.line
            pending: list[Any] = []
            for raw in lines:
                line += 1
                if not raw.strip():
                    continue
                rows += 1
                found = _row(raw, header, reference)
                if isinstance(found, str):
                    progress.bad.append(BadRow(line, found))
                else:
                    earlier = seen.setdefault(found.person_id, line)
                    if earlier != line:
                        progress.bad.append(BadRow(line, f"person {found.person_id} is already "
                                                         f"enrolled by line {earlier}"))
                    else:
                        pending.append(await _send(producers, bootstrap, topic, found,
                                                   clock(), signer))
                        sent += 1
                if len(pending) >= CHUNK or (max_rows is not None and rows >= max_rows):
                    await _settle(pending, progress, lines.offset, line, path)
                    if on_progress:
                        on_progress(lines.offset, progress.sent, len(progress.bad))
                if max_rows is not None and rows >= max_rows:
                    break
            else:
                progress.done = True
            await _settle(pending, progress, lines.offset, line, path)
            if on_progress:
                on_progress(lines.offset, progress.sent, len(progress.bad))
    finally:
        for producer in producers.values():
            await producer.stop()
    return ImportResult(rows, sent, resumed_at, progress.bad, time.monotonic() - started,
                        progress.done, progress.sent)


def _row(raw: bytes, header: list[str], reference: ReferenceData | None
         ) -> PersonEnrolled | str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8 text"
    record = next(csv.reader([text]), [])
    if len(record) != len(header):
        return f"{len(record)} columns, the header has {len(header)}"
    return parse_row(dict(zip(header, record, strict=True)), reference)


async def _send(producers: dict[str, Any], bootstrap: str, topic: str, command: PersonEnrolled,
                at: datetime, signer: Any = None) -> Any:
    """Queue one row's event; the agency's own producer sends it (principal agency-<code>)."""
    agency = command.insured_agency
    producer = producers.get(agency)
    if producer is None:
        producer = kafka_clients.producer(
            bootstrap, principal=kafka_clients.agency_principal(agency),
            enable_idempotence=True, linger_ms=20, max_batch_size=256 * 1024)
        await producer.start()
        producers[agency] = producer
    data = command.model_dump(mode="json", exclude_none=True)
    source = f"agency/{agency}"
    value = inbound.envelope(command.TYPE, data, id=row_event_id(data), source=source,
                             time=at.replace(microsecond=0).isoformat(),
                             subject=command.person_id)
    # signed with the agency's key, like every submission (docs/security.md)
    return await producer.send(topic, value, key=command.person_id.encode(),
                               headers=inbound.signature_headers(value, source=source,
                                                                 signer=signer))


async def _settle(pending: list[Any], progress: Progress, offset: int, line: int,
                  path: Path) -> None:
    """Wait for Kafka to acknowledge every queued row, then move the checkpoint past them."""
    import asyncio

    if pending:
        await asyncio.gather(*pending)
    progress.sent += len(pending)
    pending.clear()
    progress.offset, progress.line = offset, line
    save_progress(path, progress)
