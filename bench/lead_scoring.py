"""How fast lead scores and next actions are: contacts with interactions and closed deals made
in SQL, then a model trained on the closed deals, a full pass of the worker over every contact
(rules only, then rules and model), rescoring after a burst of changes, and next-actions reads.

    createdb crm_bench_scoring
    .venv/bin/python bench/lead_scoring.py \
        --database-url postgresql://postgres@127.0.0.1:5432/crm_bench_scoring --contacts 20000

Prints contacts scored per second by one worker, the training time, and next-actions latency."""

import argparse
import asyncio
import json
import statistics
import time
import uuid
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.contacts.models import unknown_consent
from crm_api.contacts.schemas import ContactUpdate
from crm_api.contacts.service import update_contact
from crm_api.core.auth import Principal
from crm_api.core.database_url import resolve_database_url
from crm_api.core.db import create_engine, create_sessionmaker
from crm_api.core.scopes import Scope
from crm_api.deals.schemas import PipelineCreate
from crm_api.deals.service import create_pipeline
from crm_api.migrate import upgrade_to_head
from crm_api.playbooks.schemas import PlaybooksInput
from crm_api.playbooks.service import next_actions, put_playbooks
from crm_api.scoring.schemas import LeadScoringInput
from crm_api.scoring.service import put_config, score_leads, train_model
from crm_api.settings import Settings
from crm_api.workspaces.service import create_workspace

SCORING = {
    "fit_rules": [
        {"key": "vip", "label": "VIP", "points": 25,
         "filter": {"field": "tags", "op": "contains", "value": "vip"}},
        {"key": "qualified", "label": "Qualified", "points": 20,
         "filter": {"field": "lifecycle_stage", "op": "eq", "value": "qualified"}},
        {"key": "buyer", "label": "Has bought", "points": 15,
         "filter": {"field": "metrics.order_count", "op": "gte", "value": 1}},
    ],
    "engagement_rules": [
        {"key": "month", "label": "Interactions in 30 days", "within_days": 30,
         "points_each": 5, "max_points": 25},
        {"key": "calls", "label": "Inbound calls in 7 days", "within_days": 7,
         "points_each": 10, "max_points": 20, "channels": ["call"], "direction": "inbound"},
    ],
}  # fmt: skip
# Ten playbooks: the last matches everyone, the others by RFM segment, P(alive) and score.
PLAYBOOKS = {
    "playbooks": [
        *({"key": f"rfm-{n}", "name": f"RFM {n}", "offer": "10% off",
           "when": {"field": "metrics.rfm_segment", "op": "eq", "value": f"segment-{n}"},
           "message": {"channels": ["sms", "email"], "template": "Hi {{first_name|there}}"}}
          for n in range(7)),
        {"key": "slipping", "name": "Slipping", "offer": "Free shipping",
         "when": {"field": "metrics.p_alive", "op": "lt", "value": 0.3},
         "owner_task": {"title": "Call {{full_name}}"}},
        {"key": "hot", "name": "Hot", "owner_task": {"title": "Call {{full_name}}"},
         "when": {"field": "metrics.lead_score", "op": "gte", "value": 50}},
        {"key": "all", "name": "Newsletter", "skip_with_open_tickets": False,
         "message": {"channels": ["email"], "template": "News for {{first_name|you}}"}},
    ]
}  # fmt: skip


async def _make_data(session: AsyncSession, principal: Principal, contacts: int) -> None:
    execute, workspace_id = session.execute, principal.workspace_id
    await execute(
        text(
            "INSERT INTO contacts (workspace_id, id, first_name, email, tags, lifecycle_stage, "
            "consent) SELECT :w, gen_random_uuid(), 'P' || n, 'p' || n || '@example.com', "
            "CASE WHEN n % 5 = 0 THEN ARRAY['vip'] ELSE ARRAY[]::text[] END, "
            "CASE WHEN n % 3 = 0 THEN 'qualified' ELSE 'lead' END, CAST(:consent AS jsonb) "
            "FROM generate_series(1, :n) n"
        ),
        {"w": workspace_id, "n": contacts, "consent": json.dumps(unknown_consent())},
    )
    # Five interactions per contact over the last 60 days (so 2.5 in the 30-day window).
    await execute(
        text(
            "INSERT INTO interactions (workspace_id, id, channel, direction, occurred_at, "
            "contact_id) SELECT c.workspace_id, gen_random_uuid(), "
            "CASE WHEN k = 1 THEN 'call' ELSE 'email' END, "
            "CASE WHEN k = 1 THEN 'inbound' ELSE 'outbound' END, "
            "now() - make_interval(days => (k * 12 + abs(hashtext(c.id::text)) % 12)), c.id "
            "FROM contacts c, generate_series(1, 5) k WHERE c.workspace_id = :w"
        ),
        {"w": workspace_id},
    )
    # A closed deal for one contact in four: won by 70 % of VIPs, 45 % of the qualified, 15 % of
    # the others.
    stages = [{"name": "Won", "kind": "won"}, {"name": "Lost", "kind": "lost"}]
    pipeline = await create_pipeline(
        session, principal, PipelineCreate.model_validate({"name": "Bench", "stages": stages})
    )
    won, lost = pipeline.stages
    await execute(
        text(
            "WITH picked AS (SELECT id, row_number() OVER (ORDER BY id) n, "
            "abs(hashtext(id::text)) % 100 < CASE WHEN 'vip' = ANY(tags) THEN 70 "
            "WHEN lifecycle_stage = 'qualified' THEN 45 ELSE 15 END AS won "
            "FROM contacts WHERE workspace_id = :w), "
            "deals_made AS (INSERT INTO deals (workspace_id, id, name, pipeline_id, stage_id, "
            "status, closed_at) SELECT :w, gen_random_uuid(), 'D' || n, :p, "
            "CASE WHEN won THEN CAST(:won AS uuid) ELSE CAST(:lost AS uuid) END, "
            "CASE WHEN won THEN 'won' ELSE 'lost' END, now() - interval '10 days' "
            "FROM picked WHERE n % 4 = 0 RETURNING id, name) "
            "INSERT INTO deal_contacts (workspace_id, deal_id, contact_id) "
            "SELECT :w, d.id, p.id FROM deals_made d JOIN picked p ON d.name = 'D' || p.n"
        ),
        {"w": workspace_id, "p": pipeline.id, "won": won.id, "lost": lost.id},
    )


async def main(database_url: str, contacts: int) -> None:
    settings = Settings(database_url=database_url)
    engine = create_engine(database_url, settings)
    sessionmaker = create_sessionmaker(engine)
    async with sessionmaker.begin() as session:
        workspace, key, _ = await create_workspace(session, f"Scoring bench {uuid.uuid4().hex[:6]}")
        principal = Principal(workspace.id, key.id, frozenset({Scope.admin}))
        await _make_data(session, principal, contacts)
    async with engine.begin() as connection:  # fresh statistics, as autovacuum would give
        await connection.execute(text("ANALYZE"))

    async def full_pass() -> tuple[float, int]:
        started, rounds = time.perf_counter(), 0
        while True:
            async with sessionmaker.begin() as session:
                if not await score_leads(session, datetime.now(UTC), limit=1):
                    break
            rounds += 1
        return time.perf_counter() - started, rounds

    async with sessionmaker.begin() as session:
        await put_config(session, principal, LeadScoringInput.model_validate(SCORING), None)
        await session.execute(
            text("UPDATE lead_scoring SET use_model = false WHERE workspace_id = :w"),
            {"w": workspace.id},
        )
    rules_only, rules_rounds = await full_pass()

    started = time.perf_counter()
    async with sessionmaker.begin() as session:
        await session.execute(
            text("UPDATE lead_scoring SET use_model = true WHERE workspace_id = :w"),
            {"w": workspace.id},
        )
        model = await train_model(session, principal)
    trained = time.perf_counter() - started
    with_model, model_rounds = await full_pass()

    # A burst of 1,000 contact updates through the service, then the worker catches up.
    async with sessionmaker.begin() as session:
        ids = (
            await session.execute(
                text("SELECT id FROM contacts WHERE workspace_id = :w ORDER BY id LIMIT 1000"),
                {"w": workspace.id},
            )
        ).scalars().all()  # fmt: skip
        for contact_id in ids:
            await update_contact(session, principal, contact_id, ContactUpdate(tags=["vip"]), None)
    changed, changed_rounds = await full_pass()

    async with sessionmaker.begin() as session:
        await put_playbooks(session, principal, PlaybooksInput.model_validate(PLAYBOOKS), None)
    latencies = []
    for contact_id in ids[:500]:
        started = time.perf_counter()
        async with sessionmaker.begin() as session:
            actions = await next_actions(session, principal, contact_id)
        latencies.append((time.perf_counter() - started) * 1000)
    async with sessionmaker.begin() as session:
        scored, mean_score = (
            await session.execute(
                text(
                    "SELECT count(*), avg(lead_score) FROM contact_metrics WHERE workspace_id = :w "
                    "AND lead_scored_at IS NOT NULL"
                ),
                {"w": workspace.id},
            )
        ).one()
    await engine.dispose()

    print("| step | count | seconds | per second |\n|---|---|---|---|")
    for step, count, seconds in (
        (f"full pass, rules only ({rules_rounds} rounds)", contacts, rules_only),
        (f"full pass, rules + model ({model_rounds} rounds)", contacts, with_model),
        (f"1,000 changed contacts rescored from the feed ({changed_rounds} rounds)", 1000, changed),
    ):
        print(f"| {step} | {count:,} | {seconds:.1f} | {count / seconds:,.0f} |")
    print(
        f"\ntraining on {model.samples:,} contacts of closed deals ({model.won:,} won): "
        f"{trained:.2f} s, AUC {model.auc:.3f}, {model.iterations} iterations"
    )
    latencies.sort()
    print(
        f"next actions (10 playbooks), 500 reads: p50 {statistics.median(latencies):.1f} ms, "
        f"p95 {latencies[int(len(latencies) * 0.95)]:.1f} ms; last had {len(actions.data)} "
        f"actions; {scored:,} contacts scored, mean score {float(mean_score):.1f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--contacts", type=int, default=20_000)
    arguments = parser.parse_args()
    url = resolve_database_url(Settings(database_url=arguments.database_url))
    upgrade_to_head(url)
    asyncio.run(main(url, arguments.contacts))
