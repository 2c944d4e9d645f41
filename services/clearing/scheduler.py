"""The clearing calendar's clock: publishes ``calendar.day_started`` on ``clearing.schedule``.

Each day event carries watermarks: the end of every partition of the clearing service's
inputs at the moment the day began, so the day cuts the log at a fixed place. Days are
published in order, once each (id ``day:<date>``), and dated at Asia/Shanghai midnight:
the event, not the wall clock, is what the services act on. Operators, tests and the demo
advance the calendar by hand (``clearinghouse clearing advance --to``); ``follow`` does it
at each midnight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date, datetime, timedelta

from aiokafka import TopicPartition

from shared import topics
from shared.business_time import SHANGHAI, business_date, start_of
from shared.events import encode, make_event
from shared.events.clearing import DayStarted
from shared.messaging import clients as kafka_clients

SOURCE = "scheduler/calendar"
#: The calendar is the clearing service's own clock: it logs in as the clearing service.
PRINCIPAL = kafka_clients.service_principal("clearing")
#: The topics a day cuts (the clearing service's inputs besides the calendar itself).
CUT = (topics.SETTLEMENT_EVENTS, topics.CLEARING_SUBMISSIONS)


async def last_day_started(bootstrap: str, prefix: str = "") -> date | None:
    """The latest day on the calendar topic, or None on a new installation."""
    consumer = kafka_clients.consumer(bootstrap=bootstrap, principal=PRINCIPAL, group_id=None,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        partition = TopicPartition(prefix + topics.CLEARING_SCHEDULE, 0)
        consumer.assign([partition])
        end = (await consumer.end_offsets([partition]))[partition]
        if end == 0:
            return None
        consumer.seek(partition, end - 1)
        record = await consumer.getone()
        from shared.events import decode

        day = decode(topics.CLEARING_SCHEDULE, record.value).data
        assert isinstance(day, DayStarted)
        return day.date
    finally:
        await consumer.stop()


async def watermarks(bootstrap: str, prefix: str = "") -> dict[str, dict[str, int]]:
    """The end offset of every partition of the cut topics, now."""
    consumer = kafka_clients.consumer(bootstrap=bootstrap, principal=PRINCIPAL, group_id=None)
    await consumer.start()
    try:
        marks: dict[str, dict[str, int]] = {}
        for topic in CUT:
            parts = consumer.partitions_for_topic(prefix + topic)
            if parts is None:
                await consumer._client.force_metadata_update()  # noqa: SLF001
                parts = consumer.partitions_for_topic(prefix + topic) or set()
            ends = await consumer.end_offsets([TopicPartition(prefix + topic, p) for p in parts])
            marks[topic] = {str(tp.partition): offset for tp, offset in sorted(ends.items())}
        return marks
    finally:
        await consumer.stop()


def midnight(day: date) -> datetime:
    return start_of(day)


async def advance(bootstrap: str, to: date, *, prefix: str = "",
                  start: date | None = None) -> list[date]:
    """Start every day after the last one published, through `to` (or from `start` on a
    new calendar); return the days published."""
    last = await last_day_started(bootstrap, prefix)
    first = last + timedelta(days=1) if last else (start or to)
    days = [first + timedelta(days=n) for n in range((to - first).days + 1)]
    if not days:
        return []
    producer = kafka_clients.producer(bootstrap, principal=PRINCIPAL, enable_idempotence=True)
    await producer.start()
    try:
        for day in days:
            event = make_event(DayStarted(date=day, watermarks=await watermarks(bootstrap, prefix)),
                               id=f"day:{day.isoformat()}", source=SOURCE, time=midnight(day))
            await producer.send_and_wait(prefix + topics.CLEARING_SCHEDULE, encode(event),
                                         key=b"calendar")
    finally:
        await producer.stop()
    return days


async def follow(bootstrap: str, *, prefix: str = "",
                 now: Callable[[], datetime] = lambda: datetime.now(SHANGHAI),
                 poll_seconds: float = 30.0) -> None:
    """Start each Asia/Shanghai day as the wall clock reaches it, until cancelled."""
    while True:
        await advance(bootstrap, business_date(now()), prefix=prefix)
        await asyncio.sleep(poll_seconds)
