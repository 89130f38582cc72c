"""A typed Python client generated from openapi/openapi.json (openapi-python-client), driving a
running server through what an integrator does first."""

import asyncio
import datetime
import importlib
import io
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.serving import LiveServer

SPEC = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"
GENERATOR = Path(sys.executable).parent / "openapi-python-client"


@pytest.fixture(scope="module")
def crm_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    folder = tmp_path_factory.mktemp("generated")
    config = folder / "config.yml"
    config.write_text("package_name_override: crm_client\npost_hooks: []\n")
    generated = subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--path",
            str(SPEC),
            "--meta",
            "none",
            "--output-path",
            str(folder / "crm_client"),
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module("crm_client")
    finally:
        sys.path.remove(str(folder))
        for name in [n for n in sys.modules if n == "crm_client" or n.startswith("crm_client.")]:
            del sys.modules[name]


def api(module: str) -> Any:
    return importlib.import_module(f"crm_client.{module}")


def test_an_integrators_first_session(crm_client: ModuleType, live_server: LiveServer) -> None:
    models = api("models")
    companies_create = api("api.companies.companies_create")
    contacts_create = api("api.contacts.contacts_create")
    company_contacts = api("api.contacts.companies_contacts_list")
    contacts_get = api("api.contacts.contacts_get")
    contacts_update = api("api.contacts.contacts_update")
    contacts_delete = api("api.contacts.contacts_delete")
    run = uuid.uuid4().hex[:8]
    client = crm_client.AuthenticatedClient(base_url=live_server.url, token=live_server.key)

    # A company and its contacts.
    company = companies_create.sync(
        client=client,
        body=models.CompanyCreate(
            name=f"Typed {run}", domain=f"typed-{run}.example", type_=models.CompanyType.CUSTOMER
        ),
    )
    assert isinstance(company, models.CompanyRead)
    assert company.type_ == models.CompanyType.CUSTOMER
    created = []
    for n in range(5):
        contact = contacts_create.sync(
            client=client,
            body=models.ContactCreate(
                first_name=f"Person{n}",
                email=f"person{n}-{run}@example.com",
                company_id=company.id,
                lifecycle_stage=models.LifecycleStage.LEAD,
            ),
            idempotency_key=f"create-{run}-{n}",
        )
        assert isinstance(contact, models.ContactRead), contact
        created.append(contact.id)

    # Page by page, two at a time, following next_cursor.
    seen: list[uuid.UUID] = []
    cursor: Any = crm_client.types.UNSET
    while True:
        page = company_contacts.sync(client=client, company_id=company.id, limit=2, cursor=cursor)
        assert isinstance(page, models.ContactPage)
        seen += [c.id for c in page.data]
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert seen == created

    # Optimistic concurrency: patch with the ETag, then a stale one is a typed 412 problem.
    first = contacts_get.sync_detailed(contact_id=created[0], client=client)
    etag = first.headers["etag"]
    patched = contacts_update.sync(
        contact_id=created[0],
        client=client,
        body=models.ContactUpdate(last_name="Typed"),
        if_match=etag,
    )
    assert isinstance(patched, models.ContactRead)
    assert patched.version == 2
    stale = contacts_update.sync_detailed(
        contact_id=created[0],
        client=client,
        body=models.ContactUpdate(last_name="Stale"),
        if_match=etag,
    )
    assert stale.status_code == 412
    assert isinstance(stale.parsed, models.Problem)
    assert stale.parsed.additional_properties["current_etag"] == '"2"'

    # Delete; the contact is gone.
    deleted = contacts_delete.sync_detailed(contact_id=created[0], client=client)
    assert deleted.status_code == 204
    missing = contacts_get.sync_detailed(contact_id=created[0], client=client)
    assert missing.status_code == 404
    assert isinstance(missing.parsed, models.Problem)
    assert missing.parsed.title == "Not found"

    # A validation problem, typed down to the field that was wrong.
    invalid = contacts_create.sync_detailed(
        client=client,
        body=models.ContactCreate(first_name="X", birthday=datetime.date(2999, 1, 1)),
    )
    assert invalid.status_code == 422
    assert isinstance(invalid.parsed, models.Problem)
    assert invalid.parsed.errors[0].loc == ["body", "birthday"]


def test_an_integrator_subscribes_and_follows_the_feed(
    crm_client: ModuleType, live_server: LiveServer
) -> None:
    models = api("models")
    endpoints_create = api("api.webhook_endpoints.webhook_endpoints_create")
    endpoints_test = api("api.webhook_endpoints.webhook_endpoints_test")
    deliveries_list = api("api.webhook_endpoints.webhook_deliveries_list")
    endpoints_delete = api("api.webhook_endpoints.webhook_endpoints_delete")
    events_list = api("api.events.events_list")
    contacts_create = api("api.contacts.contacts_create")
    client = crm_client.AuthenticatedClient(base_url=live_server.url, token=live_server.key)

    # Subscribe with the typed patterns; the secret comes once.
    endpoint = endpoints_create.sync(
        client=client,
        body=models.WebhookEndpointCreate(
            url="http://127.0.0.1:9/hooks",
            event_types=[models.EventTypePattern.CONTACT_ANY, models.EventTypePattern.ANY_DELETED],
            fields=["lifecycle_stage"],
        ),
    )
    assert isinstance(endpoint, models.WebhookEndpointWithSecret)
    assert endpoint.secret.startswith("whsec_")
    assert endpoint.event_types == ["contact.*", "*.deleted"]

    # Follow the feed from where we were: what happens next comes after that sequence.
    start = events_list.sync(client=client, sort="-sequence", limit=1)
    assert isinstance(start, models.EventPage)
    last_seen = start.data[0].sequence if start.data else 0
    contact = contacts_create.sync(client=client, body=models.ContactCreate(first_name="Fed"))
    assert isinstance(contact, models.ContactRead)
    news = events_list.sync(client=client, after_sequence=last_seen, type_="contact.*")
    assert isinstance(news, models.EventPage)
    [created] = news.data
    assert created.type_ == "contact.created"
    assert created.resource_id == contact.id
    assert created.data["first_name"] == "Fed"

    # The delivery waits in the endpoint's log; a test event joins it.
    sent = endpoints_test.sync(endpoint_id=endpoint.id, client=client)
    assert isinstance(sent, models.WebhookTestSent)
    log = deliveries_list.sync(endpoint_id=endpoint.id, client=client)
    assert isinstance(log, models.DeliveryPage)
    assert {d.event_type for d in log.data} == {"contact.created", "webhook.test"}
    assert all(d.status == models.DeliveryStatus.PENDING for d in log.data)

    assert endpoints_delete.sync_detailed(endpoint_id=endpoint.id, client=client).status_code == 204


def test_a_sales_team_works_its_pipeline(crm_client: ModuleType, live_server: LiveServer) -> None:
    models = api("models")
    users_create = api("api.users.users_create")
    pipelines_create = api("api.pipelines.pipelines_create")
    deals_create = api("api.deals.deals_create")
    deals_update = api("api.deals.deals_update")
    history_list = api("api.deals.deals_stage_history_list")
    forecast = api("api.deals.deals_forecast")
    client = crm_client.AuthenticatedClient(base_url=live_server.url, token=live_server.key)
    run = uuid.uuid4().hex[:8]

    rep = users_create.sync(
        client=client, body=models.UserCreate(name="Rep", email=f"rep-{run}@example.com")
    )
    assert isinstance(rep, models.UserRead)
    pipeline = pipelines_create.sync(
        client=client,
        body=models.PipelineCreate(
            name=f"Typed {run}",
            stages=[
                models.StageCreate(name="Demo", probability=30),
                models.StageCreate(name="Won", kind=models.StageKind.WON),
            ],
        ),
    )
    assert isinstance(pipeline, models.PipelineRead)
    demo, won = pipeline.stages
    deal = deals_create.sync(
        client=client,
        body=models.DealCreate(
            name="Typed deal", stage_id=demo.id, amount="1250.00", currency="EUR", owner_id=rep.id
        ),
    )
    assert isinstance(deal, models.DealRead)
    assert (deal.amount, deal.status) == ("1250.00", models.StageKind.OPEN)

    weighted = forecast.sync(
        client=client, pipeline_id=pipeline.id, group_by=models.ForecastGrouping.STAGE
    )
    assert isinstance(weighted, models.Forecast)
    assert [(r.stage_id, r.weighted_amount) for r in weighted.rows] == [(demo.id, "375.00")]

    closed = deals_update.sync(
        deal_id=deal.id, client=client, body=models.DealUpdate(stage_id=won.id)
    )
    assert isinstance(closed, models.DealRead)
    assert closed.status == models.StageKind.WON
    assert isinstance(closed.closed_at, datetime.datetime)
    moves = history_list.sync(deal_id=deal.id, client=client)
    assert isinstance(moves, models.DealStageChangePage)
    assert [m.to_stage_id for m in moves.data] == [demo.id, won.id]


def test_a_support_desk_answers_a_ticket(crm_client: ModuleType, live_server: LiveServer) -> None:
    models = api("models")
    contacts_create = api("api.contacts.contacts_create")
    policies_create = api("api.sla_policies.sla_policies_create")
    tickets_create = api("api.tickets.tickets_create")
    comments_create = api("api.tickets.tickets_comments_create")
    tickets_get = api("api.tickets.tickets_get")
    feedback_create = api("api.feedback.feedback_create")
    timeline = api("api.timeline.contacts_timeline_list")
    client = crm_client.AuthenticatedClient(base_url=live_server.url, token=live_server.key)
    run = uuid.uuid4().hex[:8]

    contact = contacts_create.sync(
        client=client, body=models.ContactCreate(first_name="Ada", email=f"ada-{run}@example.com")
    )
    assert isinstance(contact, models.ContactRead)
    hours = models.BusinessHoursInput(
        timezone="Europe/Berlin", monday=[models.TimeWindow(start="09:00", end="17:00")]
    )
    policy = policies_create.sync(
        client=client,
        body=models.SlaPolicyCreate(
            name=f"Typed {run}",
            targets=models.SlaTargets(urgent=models.SlaTarget(first_response_minutes=60)),
            business_hours=hours,
        ),
    )
    assert isinstance(policy, models.SlaPolicyRead)
    ticket = tickets_create.sync(
        client=client,
        body=models.TicketCreate(
            subject="Charged twice",
            contact_id=contact.id,
            priority=models.Priority.URGENT,
            sla_policy_id=policy.id,
        ),
    )
    assert isinstance(ticket, models.TicketRead)
    assert isinstance(ticket.sla.first_response, models.SlaClock)
    assert ticket.sla.first_response.status == models.TargetStatus.RUNNING

    reply = comments_create.sync(
        ticket_id=ticket.id,
        client=client,
        body=models.CommentCreate(body="Refunded.", author_contact_id=contact.id),
    )
    assert isinstance(reply, models.CommentRead)
    rating = feedback_create.sync(
        client=client,
        body=models.FeedbackCreate(
            kind=models.FeedbackKind.CSAT, score=5, contact_id=contact.id, ticket_id=ticket.id
        ),
    )
    assert isinstance(rating, models.FeedbackRead)
    rated = tickets_get.sync(ticket_id=ticket.id, client=client)
    assert isinstance(rated, models.TicketRead)
    assert isinstance(rated.csat, models.TicketCsat)
    assert rated.csat.score == 5

    entries = timeline.sync(contact_id=contact.id, client=client)
    assert isinstance(entries, models.TimelinePage)
    assert [e.kind for e in entries.data] == [
        models.TimelineKind.FEEDBACK,
        models.TimelineKind.TICKET_COMMENT,
        models.TimelineKind.TICKET,
    ]
    assert isinstance(entries.data[0].feedback, models.FeedbackRead)


def test_a_company_moves_in_imports_dedupes_and_exports(
    crm_client: ModuleType, live_server: LiveServer, database_url: str
) -> None:
    models = api("models")
    imports_create = api("api.imports.imports_create")
    imports_get = api("api.imports.imports_get")
    imports_errors = api("api.imports.imports_errors")
    contacts_get = api("api.contacts.contacts_get")
    duplicates = api("api.contacts.contacts_duplicates")
    merge = api("api.contacts.contacts_merge")
    export = api("api.exports.exports_contacts")
    client = crm_client.AuthenticatedClient(base_url=live_server.url, token=live_server.key)
    run = uuid.uuid4().hex[:8]
    tag = f"moved-{run}"

    rows = [
        f"jane.doe.{run}@gmail.com,Jane,{tag}",
        f"janedoe.{run}+old@gmail.com,Jane D.,{tag}",
        f"not-an-email-{run},Bob,{tag}",
    ]
    upload = imports_create.sync(
        client=client,
        body=models.BodyImportsCreate(
            file=crm_client.types.File(
                payload=io.BytesIO(("Mail,Name,Labels\n" + "\n".join(rows)).encode()),
                file_name="people.csv",
                mime_type="text/csv",
            ),
            resource=models.ImportResource.CONTACTS,
            mapping=json.dumps({"Mail": "email", "Name": "first_name", "Labels": "tags"}),
        ),
    )
    assert isinstance(upload, models.ImportRead), upload
    assert upload.status == models.ImportStatus.QUEUED
    _run_the_workers_part(database_url, live_server.key, upload.id)
    done = imports_get.sync(import_id=upload.id, client=client)
    assert isinstance(done, models.ImportRead)
    assert (done.status, done.counts.created, done.counts.failed) == (
        models.ImportStatus.COMPLETED, 2, 1,
    )  # fmt: skip
    errors = imports_errors.sync(import_id=upload.id, client=client)
    assert isinstance(errors, models.ImportRowErrorPage)
    assert (errors.data[0].line, errors.data[0].errors[0].loc) == (4, ["row", "Mail"])

    groups = duplicates.sync(client=client, reason=models.DuplicateReason.EMAIL, limit=100)
    assert isinstance(groups, models.DuplicatePage)
    [group] = [g for g in groups.data if run in g.key]
    assert group.key == f"janedoe{run}@gmail.com"  # Gmail ignores dots and +tags
    first, second = group.contacts
    etag = contacts_get.sync_detailed(contact_id=first.id, client=client).headers["etag"]
    merged = merge.sync(
        contact_id=first.id,
        client=client,
        body=models.ContactMerge(merge_ids=[second.id]),
        if_match=etag,
    )
    assert isinstance(merged, models.ContactMergeResult), merged
    assert merged.survivor.additional_emails == [second.email]
    moved = contacts_get.sync_detailed(contact_id=second.id, client=client)
    assert moved.status_code == 301
    assert moved.headers["location"] == f"/v1/contacts/{first.id}"

    exported = export.sync_detailed(client=client, tag=tag)
    assert exported.status_code == 200
    lines = exported.content.decode("utf-8-sig").splitlines()
    assert len(lines) == 2
    assert str(first.id) in lines[1]


def _run_the_workers_part(database_url: str, key: str, import_id: uuid.UUID) -> None:
    """The live server runs no worker: its part (applying the rows) is done here."""
    from crm_api.core.auth import principal_of_secret
    from crm_api.core.db import transaction
    from crm_api.imports.service import run_import_step
    from crm_api.settings import Settings

    async def run() -> None:
        more = True
        while more:
            async with transaction(database_url, Settings(database_url=None)) as session:
                principal = await principal_of_secret(session, key)
                assert principal is not None
                more = await run_import_step(session, principal.workspace_id, import_id)

    asyncio.run(run())
