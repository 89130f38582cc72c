"""How fast the worker turns events into points: paid orders written through the orders service
(batches of 1,000, as an ERP sync sends them), then the earning rules applied until the program
has caught up with the feed; then redemptions racing on a few accounts through the service.

    createdb crm_bench_loyalty
    .venv/bin/python bench/loyalty_earning.py \
        --database-url postgresql://postgres@127.0.0.1:5432/crm_bench_loyalty --orders 20000

Prints orders/s written, events and entries/s applied by one worker, and redemptions/s with
the balance checked against the ledger."""

import argparse
import asyncio
import json
import random
import time
import uuid
from datetime import UTC, datetime

from sqlalchemy import text

from crm_api.contacts.models import unknown_consent
from crm_api.core.auth import Principal
from crm_api.core.database_url import resolve_database_url
from crm_api.core.db import create_engine, create_sessionmaker
from crm_api.core.errors import ProblemError
from crm_api.core.scopes import Scope
from crm_api.loyalty.earning import apply_earning_rules
from crm_api.loyalty.schemas import LoyaltyProgramInput, RedemptionCreate
from crm_api.loyalty.service import put_program, redeem_points
from crm_api.migrate import upgrade_to_head
from crm_api.orders.schemas import OrderUpsertItem
from crm_api.orders.service import batch_upsert_orders
from crm_api.settings import Settings
from crm_api.workspaces.service import create_workspace

PROGRAM = {
    "name": "Bench",
    "points_expire_after_days": 365,
    "rules": [
        {"key": "orders", "name": "1 per euro", "trigger": "order_paid", "points_per_unit": "1"}
    ],
    "tiers": [
        {"key": "silver", "name": "Silver", "min_points": 500},
        {"key": "gold", "name": "Gold", "min_points": 2000},
    ],
    "badges": [{"key": "ten", "name": "Ten orders", "criterion": "paid_orders", "threshold": 10}],
}


async def main(database_url: str, orders: int, contacts: int) -> None:
    settings = Settings(database_url=database_url)
    engine = create_engine(database_url, settings)
    sessionmaker = create_sessionmaker(engine)
    async with sessionmaker.begin() as session:
        workspace, key, _ = await create_workspace(session, f"Loyalty bench {uuid.uuid4().hex[:6]}")
        principal = Principal(workspace.id, key.id, frozenset({Scope.admin}))
        ids = (
            (
                await session.execute(
                    text(
                        "INSERT INTO contacts (workspace_id, id, first_name, consent) "
                        "SELECT :w, gen_random_uuid(), 'P' || n, CAST(:consent AS jsonb) "
                        "FROM generate_series(1, :n) n "
                        "RETURNING id"
                    ),
                    {"w": workspace.id, "n": contacts, "consent": json.dumps(unknown_consent())},
                )
            )
            .scalars()
            .all()
        )
        await put_program(session, principal, LoyaltyProgramInput(**PROGRAM), None)

    started = time.perf_counter()
    for first in range(0, orders, 1000):
        items = [
            OrderUpsertItem(
                external_id=f"SO-{n}",
                contact_id=random.choice(ids),
                status="paid",
                currency="EUR",
                total=f"{random.randint(5, 400)}.00",
                ordered_at=datetime.now(UTC),
            )
            for n in range(first, min(first + 1000, orders))
        ]
        async with sessionmaker.begin() as session:
            await batch_upsert_orders(session, principal, items)
    written = time.perf_counter() - started

    started, rounds = time.perf_counter(), 0
    while True:
        async with sessionmaker.begin() as session:
            if not await apply_earning_rules(session, datetime.now(UTC), limit=1):
                break
        rounds += 1
    applied = time.perf_counter() - started
    async with sessionmaker.begin() as session:
        entries, tiers, badges = (
            await session.execute(
                text(
                    "SELECT (SELECT count(*) FROM loyalty_entries WHERE workspace_id = :w), "
                    "(SELECT count(*) FROM loyalty_accounts WHERE workspace_id = :w "
                    " AND tier_key IS NOT NULL), "
                    "(SELECT count(*) FROM loyalty_badge_awards WHERE workspace_id = :w)"
                ),
                {"w": workspace.id},
            )
        ).one()

    hot = ids[:5]
    in_flight = asyncio.Semaphore(16)  # within the connection pool

    async def redeem(contact_id: uuid.UUID) -> bool:
        try:
            async with in_flight, sessionmaker.begin() as session:
                await redeem_points(session, principal, contact_id, RedemptionCreate(points=10))
            return True
        except ProblemError:
            return False

    started = time.perf_counter()
    results = await asyncio.gather(*(redeem(random.choice(hot)) for _ in range(400)))
    raced = time.perf_counter() - started
    async with sessionmaker.begin() as session:
        mismatched = (
            await session.execute(
                text(
                    "SELECT count(*) FROM loyalty_accounts a WHERE a.workspace_id = :w AND "
                    "a.balance <> (SELECT coalesce(sum(points), 0) FROM loyalty_entries e "
                    "WHERE e.workspace_id = a.workspace_id AND e.contact_id = a.contact_id) "
                    "OR a.balance < 0"
                ),
                {"w": workspace.id},
            )
        ).scalar_one()
    await engine.dispose()

    taken = sum(results)
    rows = [
        ("paid orders written (batches of 1,000)", f"{orders}", written, orders),
        (f"events applied by one worker ({rounds} rounds)", f"{orders}", applied, orders),
        ("ledger entries made", f"{entries}", applied, entries),
        ("redemptions on 5 accounts, 400 racing", f"{taken} taken, {400 - taken} refused",
         raced, 400),
    ]  # fmt: skip
    print("| step | count | seconds | per second |\n|---|---|---|---|")
    for step, count, seconds, done in rows:
        print(f"| {step} | {count} | {seconds:.1f} | {done / seconds:,.0f} |")
    print(
        f"\naccounts in a tier: {tiers}; badges awarded: {badges}; accounts whose balance "
        f"differs from their ledger or is below zero: {mismatched}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--contacts", type=int, default=2_000)
    arguments = parser.parse_args()
    url = resolve_database_url(Settings(database_url=arguments.database_url))
    upgrade_to_head(url)
    asyncio.run(main(url, arguments.orders, arguments.contacts))
