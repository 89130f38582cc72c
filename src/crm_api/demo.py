"""The demo workspace `make serve` starts with: sales reps, companies and contacts with realistic,
accented names, a pipeline of deals in every stage, tickets under a business-hours SLA,
interactions and survey answers, so search, filters, pagination, stage history, the forecast,
SLA clocks and the timeline have something to show."""

import random
import unicodedata
from datetime import date, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.companies.models import Company
from crm_api.companies.schemas import CompanyCreate
from crm_api.companies.service import create_company
from crm_api.contacts.models import Contact
from crm_api.contacts.schemas import ContactCreate
from crm_api.contacts.service import create_contact
from crm_api.core.auth import Principal
from crm_api.core.scopes import Scope
from crm_api.deals.schemas import DealCreate, DealUpdate, PipelineCreate
from crm_api.deals.service import create_deal, create_pipeline, update_deal
from crm_api.feedback.schemas import FeedbackCreate
from crm_api.feedback.service import create_feedback
from crm_api.interactions.schemas import InteractionCreate
from crm_api.interactions.service import create_interaction
from crm_api.orders.schemas import OrderCreate
from crm_api.orders.service import create_order
from crm_api.playbooks.schemas import PlaybooksInput
from crm_api.playbooks.service import put_playbooks
from crm_api.scoring.schemas import LeadScoringInput
from crm_api.scoring.service import put_config
from crm_api.tickets.schemas import CommentCreate, SlaPolicyCreate, TicketCreate, TicketUpdate
from crm_api.tickets.service import create_comment, create_sla_policy, create_ticket, update_ticket
from crm_api.users.models import User
from crm_api.users.schemas import UserCreate
from crm_api.users.service import create_user
from crm_api.workspaces.service import (
    create_workspace,
    find_workspace,
    is_live_key,
    issue_api_key,
)

DEMO_WORKSPACE = "Demo"

COMPANIES = [
    ("Acme Corporation", "acme.com", "Manufacturing", "large", "customer"),
    ("Đặng & Partners", "dangpartners.vn", "Legal", "small", "customer"),
    ("Müller Logistik GmbH", "mueller-logistik.de", "Logistics", "medium", "supplier"),
    ("Café São Paulo", "cafesaopaulo.com.br", "Food & Beverage", "micro", "prospect"),
    ("Nordlys Energi AS", "nordlys.no", "Energy", "enterprise", "customer"),
    ("Őrség Software Kft.", "orseg.hu", "Software", "small", "partner"),
    ("Łódź Textiles", "lodztextiles.pl", "Textiles", "medium", "supplier"),
    ("Ñandú Viajes", "nanduviajes.es", "Travel", "small", "prospect"),
    ("Brightline Analytics", "brightline.io", "Software", "medium", "customer"),
    ("Sakura Foods", "sakurafoods.jp", "Food & Beverage", "large", "customer"),
]
FIRST_NAMES = [
    "Lan",
    "Minh",
    "Thảo",
    "Đức",
    "José",
    "María",
    "Jürgen",
    "Zoë",
    "Chloé",
    "Søren",
    "Ana",
    "Łukasz",
    "Ömer",
    "Aoife",
    "Noah",
    "Emma",
    "Olivia",
    "Liam",
    "Yuki",
    "Ingrid",
]
LAST_NAMES = [
    "Nguyễn",
    "Trần",
    "Đặng",
    "Lê",
    "Phạm",
    "García",
    "Müller",
    "Schröder",
    "Dubois",
    "Ødegård",
    "Kowalski",
    "Yılmaz",
    "O'Brien",
    "Smith",
    "Johnson",
    "Tanaka",
    "Björk",
]
STAGES = ["subscriber", "lead", "qualified", "customer", "churned"]
REPS = [
    ("Mai Anh Trần", "Account Executive"),
    ("Lukas Schröder", "Account Executive"),
    ("Inés Ortega", "Sales Manager"),
]
PIPELINE = {
    "name": "New business",
    "stages": [
        {"name": "Qualified", "probability": 20},
        {"name": "Demo", "probability": 40},
        {"name": "Proposal", "probability": 60},
        {"name": "Negotiation", "probability": 80},
        {"name": "Won", "kind": "won"},
        {"name": "Lost", "kind": "lost"},
    ],
}
TAGS = ["newsletter", "vip", "webinar-2026", "trade-show", "referral"]


def _ascii(text: str) -> str:
    text = text.replace("Đ", "D").replace("đ", "d").replace("Ł", "L").replace("ł", "l")
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if c.isalnum() and c.isascii()).lower()


async def _seed(session: AsyncSession, principal: Principal) -> None:
    rng = random.Random(2026)
    reps = [
        await create_user(
            session,
            principal,
            UserCreate(name=name, email=f"{_ascii(name.split()[0])}@demo.example", title=title),
        )
        for name, title in REPS
    ]
    companies = []
    for name, domain, industry, size, kind in COMPANIES:
        companies.append(
            await create_company(
                session,
                principal,
                CompanyCreate.model_validate(
                    {
                        "name": name,
                        "domain": domain,
                        "industry": industry,
                        "size": size,
                        "type": kind,
                        "tags": rng.sample(TAGS, 1),
                        "owner_id": str(rng.choice(reps).id),
                    }
                ),
            )
        )
    contacts = []
    for n in range(150):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        company = rng.choice(companies)
        contact = await create_contact(
            session,
            principal,
            ContactCreate.model_validate(
                {
                    "first_name": first,
                    "last_name": last,
                    "email": f"{_ascii(first)}.{_ascii(last)}{n}@{company.domain}",
                    "phone": f"+1415555{n:04d}",
                    "lifecycle_stage": rng.choice(STAGES),
                    "tags": rng.sample(TAGS, rng.randint(0, 2)),
                    "company_id": str(company.id),
                    "consent": {"email": rng.choice(["granted", "denied", "unknown"])},
                    "external_id": f"DEMO-{n:04d}",
                }
            ),
        )
        contacts.append(contact)
    await _seed_deals(session, principal, rng, companies, reps)
    await _seed_service(session, principal, rng, contacts, reps)
    await _seed_scoring_and_playbooks(session, principal)


async def _seed_scoring_and_playbooks(session: AsyncSession, principal: Principal) -> None:
    """Lead scoring rules (the worker scores every contact within seconds) and two playbooks."""
    scoring = {
        "fit_rules": [
            {"key": "vip", "label": "Tagged VIP", "points": 25,
             "filter": {"field": "tags", "op": "contains", "value": "vip"}},
            {"key": "software", "label": "Software company", "points": 20,
             "filter": {"field": "company.industry", "op": "eq", "value": "Software"}},
            {"key": "qualified", "label": "Qualified or customer", "points": 20,
             "filter": {"field": "lifecycle_stage", "op": "in", "value": ["qualified", "customer"]},
             },
        ],
        "engagement_rules": [
            {"key": "touches", "label": "Interactions in the last 90 days", "within_days": 90,
             "points_each": 5, "max_points": 35},
        ],
    }  # fmt: skip
    await put_config(session, principal, LeadScoringInput.model_validate(scoring), None)
    playbooks = {
        "playbooks": [
            {"key": "hot-lead", "name": "Hot lead",
             "when": {"field": "metrics.lead_score", "op": "gte", "value": 60},
             "owner_task": {"title": "Call {{full_name}} this week", "due_in_days": 3},
             "message": {"channels": ["email"], "subject": "A demo for {{company_name|you}}?",
                         "template": "Hi {{first_name|there}}, shall we show you around?"}},
            {"key": "newsletter", "name": "Newsletter", "skip_with_open_tickets": False,
             "when": {"field": "tags", "op": "contains", "value": "newsletter"},
             "message": {"channels": ["email"], "template": "News for {{first_name|you}}"}},
        ]
    }  # fmt: skip
    await put_playbooks(session, principal, PlaybooksInput.model_validate(playbooks), None)


async def _seed_deals(
    session: AsyncSession,
    principal: Principal,
    rng: random.Random,
    companies: list[Company],
    reps: list[User],
) -> None:
    """Deals that walked some of the way through the pipeline, so each has a stage history."""
    pipeline = await create_pipeline(session, principal, PipelineCreate.model_validate(PIPELINE))
    *stages, won, lost = pipeline.stages
    today = date.today()
    for n in range(40):
        company = rng.choice(companies)
        deal = await create_deal(
            session,
            principal,
            DealCreate.model_validate(
                {
                    "name": f"{company.name}: {rng.choice(['pilot', 'rollout', 'renewal'])} {n}",
                    "stage_id": str(stages[0].id),
                    "amount": f"{rng.randrange(20, 600) * 100}.00",
                    "currency": rng.choice(["EUR", "EUR", "USD"]),
                    "expected_close_date": str(today + timedelta(days=rng.randrange(0, 120))),
                    "owner_id": str(rng.choice(reps).id),
                    "company_id": str(company.id),
                    "external_id": f"DEMO-DEAL-{n:03d}",
                }
            ),
        )
        walk = stages[1 : rng.randrange(1, len(stages) + 1)]
        outcome = rng.choice([[], [], [won], [lost]])
        for stage in [*walk, *outcome]:
            moved = DealUpdate.model_validate({"stage_id": str(stage.id)})
            deal = await update_deal(session, principal, deal.id, moved, None)


SUPPORT_HOURS = {
    "timezone": "Europe/Berlin",
    **{
        day: [{"start": "08:00", "end": "12:30"}, {"start": "13:30", "end": "18:00"}]
        for day in ("monday", "tuesday", "wednesday", "thursday", "friday")
    },
}
SUBJECTS = ["Invoice charged twice", "Cannot log in", "Export is empty", "Change of address"]


async def _seed_service(
    session: AsyncSession,
    principal: Principal,
    rng: random.Random,
    contacts: list[Contact],
    reps: list[User],
) -> None:
    """Tickets under a business-hours SLA (some answered, some resolved), calls and emails,
    orders, and NPS and CSAT answers, so a contact's timeline has every kind of entry."""
    targets = {
        "urgent": {"first_response_minutes": 60, "resolution_minutes": 480},
        "high": {"first_response_minutes": 240, "resolution_minutes": 1440},
        "normal": {"first_response_minutes": 480, "resolution_minutes": 2880},
    }
    policy = SlaPolicyCreate.model_validate(
        {"name": "Support", "is_default": True, "targets": targets, "business_hours": SUPPORT_HOURS}
    )
    await create_sla_policy(session, principal, policy)
    for n, contact in enumerate(rng.sample(contacts, 30)):
        rep = rng.choice(reps)
        ticket = await create_ticket(
            session,
            principal,
            TicketCreate.model_validate(
                {
                    "subject": rng.choice(SUBJECTS),
                    "contact_id": str(contact.id),
                    "company_id": str(contact.company_id),
                    "priority": rng.choice(["normal", "normal", "high", "urgent"]),
                    "channel": rng.choice(["email", "chat", "phone"]),
                    "assignee_id": str(rep.id),
                    "external_id": f"DEMO-TICKET-{n:03d}",
                }
            ),
        )
        if n % 3:
            reply = CommentCreate(body="We are on it.", author_user_id=rep.id)
            await create_comment(session, principal, ticket.id, reply)
        if n % 3 == 2:
            resolved = TicketUpdate.model_validate({"status": "resolved"})
            await update_ticket(session, principal, ticket.id, resolved, None)
            await create_feedback(
                session,
                principal,
                FeedbackCreate.model_validate(
                    {
                        "kind": "csat",
                        "score": rng.randint(3, 5),
                        "contact_id": str(contact.id),
                        "ticket_id": str(ticket.id),
                    }
                ),
            )
    for contact in rng.sample(contacts, 60):
        await create_interaction(
            session,
            principal,
            InteractionCreate.model_validate(
                {
                    "channel": rng.choice(["call", "email", "meeting"]),
                    "direction": rng.choice(["inbound", "outbound"]),
                    "subject": "Check-in",
                    "contact_id": str(contact.id),
                    "user_id": str(rng.choice(reps).id),
                }
            ),
        )
        for _ in range(rng.randint(0, 3)):
            quantity = rng.randint(1, 5)
            order = {
                "contact_id": str(contact.id),
                "company_id": str(contact.company_id),
                "status": rng.choice(["paid", "paid", "paid", "pending", "refunded"]),
                "ordered_at": str(date.today() - timedelta(days=rng.randrange(1, 700))),
                "currency": "EUR",
                "lines": [
                    {
                        "sku": "SEAT",
                        "name": "Seat licence",
                        "quantity": str(quantity),
                        "unit_price": "49.00",
                    }
                ],
                "source_system": "demo-erp",
            }
            await create_order(session, principal, OrderCreate.model_validate(order))
        score = rng.choice([10, 9, 9, 8, 7, 6, 3])
        answer = {"kind": "nps", "score": score, "contact_id": str(contact.id), "channel": "email"}
        await create_feedback(session, principal, FeedbackCreate.model_validate(answer))


async def ensure_demo_workspace(session: AsyncSession, known_key: str | None) -> str:
    """The demo workspace's admin key: the known one while it is valid, else a new one."""
    workspace = await find_workspace(session, DEMO_WORKSPACE)
    if workspace is None:
        workspace, key, secret = await create_workspace(
            session, DEMO_WORKSPACE, default_country="US"
        )
        principal = Principal(workspace.id, key.id, frozenset({Scope.admin}), "US")
        await _seed(session, principal)
        return secret
    if known_key is not None and await is_live_key(session, workspace.id, known_key):
        return known_key
    _, secret = await issue_api_key(session, workspace.id, "demo admin", [Scope.admin])
    return secret
