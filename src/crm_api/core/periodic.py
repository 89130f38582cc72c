"""Work the worker does on a schedule besides delivering webhooks, such as finding SLA
breaches. Each round runs in a transaction of its own, and every task must be safe with several
workers running it at once (row locks taken with SKIP LOCKED, or an advisory lock)."""

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

logger = logging.getLogger(__name__)

# A busy task runs again at once, up to this many rounds, before the worker goes on.
MAX_ROUNDS = 50


@dataclass(frozen=True)
class PeriodicTask:
    name: str
    every: timedelta
    # (session, now) → how much it did; a round that did something is followed by another.
    run: Callable[[AsyncSession, datetime], Awaitable[int]]


class Scheduler:
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], tasks: Sequence[PeriodicTask]
    ) -> None:
        self.sessionmaker = sessionmaker
        self.tasks = tasks
        self._last_run: dict[str, datetime] = {}

    async def run_due(self) -> None:
        for task in self.tasks:
            now = datetime.now(UTC)
            last = self._last_run.get(task.name)
            if last is not None and now - last < task.every:
                continue
            self._last_run[task.name] = now
            try:
                for _ in range(MAX_ROUNDS):
                    async with self.sessionmaker.begin() as session:
                        done = await task.run(session, datetime.now(UTC))
                    if not done:
                        break
                    logger.info("%s: %d", task.name, done)
            except Exception:  # the database may be restarting: log, and try next time
                logger.exception("periodic task %s failed", task.name)
