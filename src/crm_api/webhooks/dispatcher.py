"""The worker loop (`crm-api worker`): claim due deliveries, post them, record what came of it.

Several workers may run at once. A claim takes rows with `FOR UPDATE SKIP LOCKED` and leases
them (status `delivering`, `next_attempt_at` = end of the lease) in a transaction that commits
before any request is sent, so no row lock is held across HTTP. A worker that dies mid-batch
loses nothing: its leases run out and another worker (or itself, restarted) takes the rows again.
Within a batch an endpoint's deliveries start in event order, one after another unless
`webhook_in_flight_per_endpoint` allows more at once; endpoints are served concurrently, so one
slow receiver does not hold up the others."""

import asyncio
import contextlib
import logging
import signal
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from crm_api.core.db import create_engine, create_sessionmaker, driver_connection
from crm_api.core.idempotency import prune_idempotency_records
from crm_api.core.logs import configure_logging
from crm_api.core.periodic import PeriodicTask, Scheduler
from crm_api.settings import Settings
from crm_api.webhooks.models import Event, WebhookDelivery, WebhookEndpoint
from crm_api.webhooks.repository import (
    WAKE_CHANNEL,
    DeliveryRepository,
    EventRepository,
    WebhookEndpointRepository,
)
from crm_api.webhooks.sender import address_problem, refused, send
from crm_api.webhooks.service import AttemptOutcome, record_outcomes

logger = logging.getLogger(__name__)

# Pruning runs at most this often, in one worker at a time (an advisory lock decides which).
MAINTENANCE_EVERY = timedelta(minutes=10)
_MAINTENANCE_LOCK = 0x63726D5F70727565  # "crm_prue"
# Time kept in hand at the end of a lease to record the outcomes.
LEASE_MARGIN = 2.0


class Dispatcher:
    def __init__(
        self,
        engine: AsyncEngine,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        client: httpx.AsyncClient | None = None,
        tasks: Sequence[PeriodicTask] = (),
    ) -> None:
        self.engine = engine
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.client = client
        self.timeout = settings.webhook_timeout_seconds
        # Each send first checks that the lease still covers a full timeout (and the time to
        # record it); what it no longer covers is handed back untried.
        self.lease = timedelta(seconds=settings.worker_lease_seconds)
        if settings.worker_lease_seconds < self.timeout + LEASE_MARGIN + 3:
            raise ValueError("worker_lease_seconds must exceed the webhook timeout by 5 s")
        self.wake = asyncio.Event()
        self._last_maintenance: datetime | None = None
        self.scheduler = Scheduler(sessionmaker, tasks)

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set: deliver what is due, sleep until woken (NOTIFY), the next
        delivery is due, or the poll interval has passed."""
        own_client = self.client is None
        self.client = self.client or httpx.AsyncClient(
            follow_redirects=False, limits=httpx.Limits(max_connections=200)
        )
        listener = asyncio.create_task(self._listen(stop))
        # Periodic work (an import's chunks, SLA scans) runs beside delivery, never in its way.
        scheduled = asyncio.create_task(self._run_scheduled(stop))
        try:
            while not stop.is_set():
                # Cleared before looking, so a NOTIFY that comes while we look is not lost.
                self.wake.clear()
                try:
                    claimed = await self.run_once()
                    await self._maintain()
                except Exception:  # the database may be restarting: log, wait, go on
                    logger.exception("dispatcher cycle failed")
                    claimed = 0
                if claimed == 0:
                    await self._sleep(stop)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            await scheduled
            if own_client:
                await self.client.aclose()

    async def _run_scheduled(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.scheduler.run_due()  # logs a failing task and goes on
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.worker_poll_seconds)

    async def run_once(self) -> int:
        """Claim one batch and deliver it; the number of deliveries claimed."""
        claim_id = uuid.uuid4()
        async with self.sessionmaker.begin() as session:
            claimed = await DeliveryRepository(session).claim_due(
                self.settings.worker_batch_size, self.lease, claim_id
            )
            if not claimed:
                return 0
            events, endpoints = await self._load(session, claimed)
        lease_ends = asyncio.get_running_loop().time() + self.lease.total_seconds()
        by_endpoint: dict[tuple[uuid.UUID, uuid.UUID], list[WebhookDelivery]] = defaultdict(list)
        for delivery in claimed:
            by_endpoint[(delivery.workspace_id, delivery.endpoint_id)].append(delivery)
        limit = asyncio.Semaphore(self.settings.worker_concurrency)

        async def serve(
            key: tuple[uuid.UUID, uuid.UUID], deliveries: list[WebhookDelivery]
        ) -> None:
            async with limit:
                await self._serve_endpoint(claim_id, endpoints[key], deliveries, events, lease_ends)

        await asyncio.gather(*(serve(key, group) for key, group in by_endpoint.items()))
        return len(claimed)

    async def _load(
        self, session: AsyncSession, claimed: Sequence[WebhookDelivery]
    ) -> tuple[dict[uuid.UUID, Event], dict[tuple[uuid.UUID, uuid.UUID], WebhookEndpoint]]:
        events: dict[uuid.UUID, Event] = {}
        by_workspace: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
        for delivery in claimed:
            by_workspace[delivery.workspace_id].append(delivery.event_id)
        for workspace_id, event_ids in by_workspace.items():
            for event in await EventRepository(session).get_any(workspace_id, event_ids):
                events[event.id] = event
        endpoint_keys = sorted({(d.workspace_id, d.endpoint_id) for d in claimed})
        endpoints = await WebhookEndpointRepository(session).get_many(endpoint_keys)
        return events, {(e.workspace_id, e.id): e for e in endpoints}

    async def _serve_endpoint(
        self,
        claim_id: uuid.UUID,
        endpoint: WebhookEndpoint,
        deliveries: list[WebhookDelivery],
        events: dict[uuid.UUID, Event],
        lease_ends: float,
    ) -> None:
        """One endpoint's share of the batch, started in event order with at most
        `webhook_in_flight_per_endpoint` requests outstanding (1: one after another); what the
        lease can no longer cover is handed back untried."""
        assert self.client is not None
        client = self.client
        loop = asyncio.get_running_loop()
        window = asyncio.Semaphore(self.settings.webhook_in_flight_per_endpoint)
        untried = list(deliveries)
        sends: list[asyncio.Task[AttemptOutcome]] = []

        async def post(delivery: WebhookDelivery) -> AttemptOutcome:
            try:
                return await send(
                    client,
                    delivery,
                    endpoint,
                    events[delivery.event_id],
                    timeout_seconds=self.timeout,
                    body_limit=self.settings.webhook_response_body_bytes,
                )
            finally:
                window.release()

        insecure_allowed = self.settings.webhooks_allow_insecure
        problem = None if insecure_allowed else await address_problem(endpoint)
        if problem is not None:
            outcomes = [refused(delivery, problem) for delivery in untried]
            untried = []
        else:
            while untried:
                await window.acquire()
                if loop.time() + self.timeout + LEASE_MARGIN >= lease_ends:
                    window.release()
                    break
                sends.append(asyncio.create_task(post(untried.pop(0))))
            outcomes = list(await asyncio.gather(*sends))
        async with self.sessionmaker.begin() as session:
            await record_outcomes(
                session,
                claim_id,
                outcomes,
                self.settings.webhook_retry_delays,
                timedelta(hours=self.settings.webhook_disable_after_hours),
            )
            if untried:
                await DeliveryRepository(session).release(claim_id, [d.id for d in untried])

    async def _sleep(self, stop: asyncio.Event) -> None:
        timeout = self.settings.worker_poll_seconds
        with contextlib.suppress(Exception):
            async with self.sessionmaker() as session:
                next_due = await DeliveryRepository(session).next_due_at()
            if next_due is not None:
                until_due = (next_due - datetime.now(UTC)).total_seconds()
                timeout = min(timeout, max(until_due, 0.01))
        waiters = [asyncio.create_task(self.wake.wait()), asyncio.create_task(stop.wait())]
        _, pending = await asyncio.wait(
            waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        for task in pending:
            task.cancel()

    async def _listen(self, stop: asyncio.Event) -> None:
        """LISTEN on a connection of its own, reconnecting when it drops; NOTIFY only lowers
        the latency, polling alone would deliver everything too."""
        while not stop.is_set():
            try:
                await self._listen_until_lost(stop)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("LISTEN connection lost; reconnecting", exc_info=True)
            await asyncio.sleep(1)

    async def _listen_until_lost(self, stop: asyncio.Event) -> None:
        def wake(*_: object) -> None:
            self.wake.set()

        lost = asyncio.Event()
        async with self.engine.connect() as connection:
            driver = await driver_connection(connection)
            driver.add_termination_listener(lambda _: lost.set())
            await driver.add_listener(WAKE_CHANNEL, wake)
            try:
                while not lost.is_set() and not stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), timeout=5)
                    if not lost.is_set():
                        await driver.execute("SELECT 1")  # notice a dead connection
            finally:
                with contextlib.suppress(Exception):
                    await driver.remove_listener(WAKE_CHANNEL, wake)

    async def _maintain(self) -> None:
        now = datetime.now(UTC)
        if self._last_maintenance is not None and now - self._last_maintenance < MAINTENANCE_EVERY:
            return
        self._last_maintenance = now
        async with self.sessionmaker.begin() as session:
            if not await session.scalar(select(func.pg_try_advisory_xact_lock(_MAINTENANCE_LOCK))):
                return
            events = await EventRepository(session).prune(
                timedelta(days=self.settings.event_retention_days)
            )
            keys = await prune_idempotency_records(
                session, timedelta(hours=self.settings.idempotency_ttl_hours)
            )
        if events or keys:
            logger.info("pruned %d events and %d idempotency records", events, keys)


async def run_worker(
    database_url: str, settings: Settings, tasks: Sequence[PeriodicTask] = ()
) -> None:
    """`crm-api worker`: one dispatcher until SIGTERM or SIGINT, then a clean stop (leases of
    a batch in flight are recorded or handed back)."""
    configure_logging(settings)
    engine = create_engine(database_url, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    logger.info("webhook worker started")
    try:
        await Dispatcher(engine, create_sessionmaker(engine), settings, tasks=tasks).run(stop)
    finally:
        await engine.dispose()
        logger.info("webhook worker stopped")
