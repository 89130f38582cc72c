"""The filter language, checked against a plain-Python evaluation of the same filter over the
same contacts: hypothesis draws random filter trees (every kind, operator, relation and metric,
injection strings among the values) and the API's search and segment preview must select
exactly the contacts this file's evaluator selects.

The evaluator is written from the documented semantics, not from core/filters.py: a condition
never matches a missing value, except `neq`, `nin` and `is_null: true`, which are the negation
of their positive twin; a related record's condition holds when the record exists (and is not
deleted) and the condition holds there; a missing metrics row reads as the metric's default."""

import asyncio
import random
from collections.abc import Callable, Coroutine
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from httpx import AsyncClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.builders import Tenant, create_company, create_contact, define_custom_field

HOSTILE = ["x' OR '1'='1", "%", "_", "\\", "'; DROP TABLE contacts; --", '"', "a%b"]
FIRST_NAMES = ["Ada", "ada", "Bob", "O'Brien", "100%", "a_b", "back\\slash", "x' OR '1'='1", None]
SOURCES = ["web", "import", "Web Form", None]
CITIES = ["Berlin", "berlin", "Paris", None]
STAGES = ["lead", "customer", "churned", None]
TAGS = ["vip", "newsletter", "b2b", "%"]
TIERS = ["gold", "silver", "bronze"]
LANGUAGES = ["en", "de", "fr"]
BIRTHDAYS = ["1980-02-29", "1990-05-17", "1990-05-18", "2001-12-31", None]
TOTALS = ["10.00", "99.99", "250", "0.50"]
ORDER_TIMES = [
    "2026-01-05T08:00:00+00:00",
    "2026-06-30T23:59:59+00:00",
    "2026-11-02T12:00:00+00:00",
]
SEATS = [0, 1, 7, 250, -3, None]
SCORES = ["0.5", "12.25", "99", "-1.5", None]
COMPANIES = {
    "Acme": {"industry": "Software", "size": "large"},
    "Shop": {"industry": "Retail", "size": "small"},
    "Blank": {},
    "Gone": {"industry": "Software", "size": "medium"},  # deleted after its contacts are made
}


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text)


class Universe:
    """The contacts as stored, and what the filter sees of each field."""

    def __init__(self) -> None:
        self.contacts: list[dict[str, Any]] = []
        self.companies: dict[str, dict[str, Any]] = {}  # live companies by id
        self.metrics: dict[str, dict[str, Any]] = {}  # by contact id, from the orders placed
        self.company_ids: list[str] = []

    def value(self, contact: dict[str, Any], field: str) -> Any:
        """The field's value for this contact; None when missing."""
        head, _, rest = field.partition(".")
        if head == "custom_fields":
            return contact["custom_fields"].get(rest)
        if head == "address":
            return (contact["address"] or {}).get(rest)
        if head == "metrics":
            return self.metrics.get(contact["id"], {}).get(rest, METRIC_DEFAULTS[rest])
        return contact[field]


METRIC_DEFAULTS: dict[str, Any] = {
    "order_count": 0,
    "total_spent": Decimal(0),
    "last_order_at": None,
}

# field → (kind, how a stored value reads, the values to draw from)
Field = tuple[str, Callable[[Any], Any], list[Any]]


def _number(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _as_stored(value: Any) -> Any:
    return value


def _date(value: str | None) -> date | None:
    return None if value is None else date.fromisoformat(value)


FIELDS: dict[str, Field] = {
    "first_name": ("text", _as_stored, [*FIRST_NAMES[:-1], *HOSTILE, "Zed"]),
    "email": ("text", _as_stored, ["c1@ex.com", "c2@ex.com", "nobody@ex.com", *HOSTILE]),
    "source": ("text", _as_stored, [*SOURCES[:-1], *HOSTILE]),
    "address.city": ("text", _as_stored, [*CITIES[:-1], "Rome"]),
    "lifecycle_stage": ("choice", _as_stored, ["lead", "customer", "churned", "subscriber"]),
    "tags": ("labels", lambda v: v or [], [*TAGS, "unused"]),
    "birthday": ("date", _date, [*BIRTHDAYS[:-1], "1995-01-01"]),
    "company_id": ("id", _as_stored, []),  # drawn from the universe's companies
    "custom_fields.tier": ("choice", _as_stored, TIERS),
    "custom_fields.langs": ("labels", lambda v: v or [], LANGUAGES),
    "custom_fields.seats": ("number", _number, [0, 1, 7, 250, -3, "6.5", 1000]),
    "custom_fields.score": ("number", _number, ["0.5", "12.25", "99", "-1.5", "12.3"]),
    "custom_fields.active": ("boolean", _as_stored, [True, False]),
    "custom_fields.renewal": ("date", _date, ["2027-01-01", "2027-06-01", "2026-12-31"]),
    "company.industry": ("text", _as_stored, ["Software", "Retail", "soft", *HOSTILE]),
    "company.size": ("choice", _as_stored, ["large", "small", "medium"]),
    "metrics.order_count": ("number", _number, [0, 1, 2, 3]),
    "metrics.total_spent": ("number", _number, [0, "10.00", "99.99", "250", "109.99", "500"]),
    "metrics.last_order_at": ("datetime", _as_stored, ORDER_TIMES),
}
OPERATORS = {
    "text": ["eq", "neq", "in", "nin", "is_null", "contains", "starts_with"],
    "choice": ["eq", "neq", "in", "nin", "is_null"],
    "id": ["eq", "neq", "in", "nin", "is_null"],
    "labels": ["contains", "in", "nin", "is_null"],
    "number": ["eq", "neq", "lt", "lte", "gt", "gte", "in", "nin", "is_null", "between"],
    "date": ["eq", "neq", "lt", "lte", "gt", "gte", "in", "nin", "is_null", "between"],
    "datetime": ["eq", "neq", "lt", "lte", "gt", "gte", "is_null", "between"],
    "boolean": ["eq", "neq", "is_null"],
}
NEGATIVE = {"neq": "eq", "nin": "in"}


def holds(kind: str, op: str, actual: Any, value: Any) -> bool:
    """Whether a condition holds for a value read off a record (None: missing)."""
    if op in NEGATIVE:
        return not holds(kind, NEGATIVE[op], actual, value)
    if op == "is_null":
        empty = actual is None or (kind == "labels" and not actual)
        return empty == value
    if kind == "labels":
        wanted = [value] if op == "contains" else value
        return any(item in (actual or []) for item in wanted)
    if actual is None:
        return False
    typed = _typed(kind, value)
    if op == "eq":
        return bool(actual == typed)
    if op == "in":
        return actual in typed
    if op == "between":
        return bool(typed[0] <= actual <= typed[1])
    if op == "contains":
        return value.lower() in actual.lower()
    if op == "starts_with":
        return bool(actual.lower().startswith(value.lower()))
    return {
        "lt": actual < typed,
        "lte": actual <= typed,
        "gt": actual > typed,
        "gte": actual >= typed,
    }[op]


def _typed(kind: str, value: Any) -> Any:
    if isinstance(value, list):
        return [_typed(kind, item) for item in value]
    if kind == "number":
        return Decimal(str(value))
    if kind == "date":
        return date.fromisoformat(value)
    if kind == "datetime":
        return _dt(value)
    return value


def evaluate(universe: Universe, contact: dict[str, Any], node: dict[str, Any]) -> bool:
    if "all" in node:
        return all(evaluate(universe, contact, child) for child in node["all"])
    if "any" in node:
        return any(evaluate(universe, contact, child) for child in node["any"])
    field, op, value = node["field"], node["op"], node["value"]
    kind, read, _ = FIELDS[field]
    if field.startswith("company."):
        company = universe.companies.get(contact["company_id"] or "")
        if op in NEGATIVE or (op == "is_null" and value):
            twin = {"field": field, "op": NEGATIVE.get(op, "is_null"), "value": value}
            if op == "is_null":
                twin["value"] = False
            return not evaluate(universe, contact, twin)
        if company is None:
            return False
        return holds(kind, op, read(company.get(field.removeprefix("company."))), value)
    return holds(kind, op, read(universe.value(contact, field)), value)


# Strategies


def _values(field: str, universe_ids: list[str]) -> list[Any]:
    return universe_ids if field == "company_id" else FIELDS[field][2]


@st.composite
def conditions(draw: st.DrawFn, company_ids: list[str]) -> dict[str, Any]:
    field = draw(st.sampled_from(sorted(FIELDS)))
    kind = FIELDS[field][0]
    op = draw(st.sampled_from(OPERATORS[kind]))
    pool = _values(field, company_ids)
    if op == "is_null":
        value: Any = draw(st.booleans())
    elif op in ("in", "nin"):
        value = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3))
    elif op == "between":
        low, high = sorted(draw(st.lists(st.sampled_from(pool), min_size=2, max_size=2)),
                           key=lambda v: _typed(kind, v))  # fmt: skip
        value = [low, high]
    elif op in ("contains", "starts_with") and kind == "text":
        whole = draw(st.sampled_from(pool))
        start = draw(st.integers(0, len(whole)))
        value = draw(st.sampled_from([whole, whole[start:], whole[:start] or whole]))
    else:
        value = draw(st.sampled_from(pool))
    return {"field": field, "op": op, "value": value}


def filters(company_ids: list[str], depth: int = 3) -> st.SearchStrategy[dict[str, Any]]:
    leaf = conditions(company_ids)
    if depth == 0:
        return leaf
    child = filters(company_ids, depth - 1)
    groups = st.lists(child, min_size=1, max_size=3)
    return st.one_of(
        leaf,
        groups.map(lambda items: {"all": items}),
        groups.map(lambda items: {"any": items}),
    )


# The data


async def build_universe(client: AsyncClient, tenant: Tenant) -> Universe:
    rng = random.Random(8)
    universe = Universe()
    for key, type, options in [
        ("tier", "select", TIERS),
        ("langs", "multi_select", LANGUAGES),
        ("seats", "number", None),
        ("score", "decimal", None),
        ("active", "boolean", None),
        ("renewal", "date", None),
    ]:
        extra = {"options": [{"value": o} for o in options]} if options else {}
        await define_custom_field(client, tenant, "contacts", key, type, **extra)
    by_name = {}
    for name, fields in COMPANIES.items():
        company = await create_company(client, tenant, name=name, **fields)
        by_name[name] = company
        universe.company_ids.append(company["id"])
    universe.company_ids.append("00000000-0000-7000-8000-000000000000")
    for i in range(40):
        fields: dict[str, Any] = {
            "first_name": rng.choice(FIRST_NAMES),
            "email": f"c{i}@ex.com" if rng.random() < 0.8 else None,
            "source": rng.choice(SOURCES),
            "lifecycle_stage": rng.choice(STAGES),
            "tags": rng.sample(TAGS, rng.randint(0, 2)),
            "birthday": rng.choice(BIRTHDAYS),
            "company_id": rng.choice([None, *(c["id"] for c in by_name.values())]),
        }
        if (city := rng.choice(CITIES)) is not None:
            fields["address"] = {"city": city, "country": "DE"}
        custom = {
            "tier": rng.choice([*TIERS, None]),
            "langs": rng.sample(LANGUAGES, rng.randint(0, 2)) if rng.random() < 0.7 else None,
            "seats": rng.choice(SEATS),
            "score": rng.choice(SCORES),
            "active": rng.choice([True, False, None]),
            "renewal": rng.choice(["2027-01-01", "2026-12-31", None]),
        }
        fields["custom_fields"] = {k: v for k, v in custom.items() if v is not None}
        if fields["first_name"] is None and fields["email"] is None:
            fields["first_name"] = "Zed"
        contact = await create_contact(client, tenant, **fields)
        await _place_orders(client, tenant, rng, universe, contact["id"])
        if i % 13 == 12:  # deleted contacts are never found
            response = await client.delete(f"/v1/contacts/{contact['id']}", headers=tenant.headers)
            assert response.status_code == 204, response.text
    response = await client.delete(f"/v1/companies/{by_name['Gone']['id']}", headers=tenant.headers)
    assert response.status_code == 204, response.text
    listed = await client.get("/v1/contacts", params={"limit": 500}, headers=tenant.headers)
    universe.contacts = listed.json()["data"]
    companies = await client.get("/v1/companies", params={"limit": 500}, headers=tenant.headers)
    universe.companies = {c["id"]: c for c in companies.json()["data"]}
    assert len(universe.contacts) == 37
    assert len(universe.companies) == 3
    return universe


async def _place_orders(
    client: AsyncClient, tenant: Tenant, rng: random.Random, universe: Universe, contact_id: str
) -> None:
    paid: list[tuple[Decimal, datetime]] = []
    for _ in range(rng.choice([0, 0, 1, 2, 3])):
        total, ordered_at = rng.choice(TOTALS), rng.choice(ORDER_TIMES)
        status = rng.choice(["paid", "paid", "pending"])
        body = {"contact_id": contact_id, "currency": "EUR", "total": total, "lines": [],
                "status": status, "ordered_at": ordered_at}  # fmt: skip
        response = await client.post("/v1/orders", json=body, headers=tenant.headers)
        assert response.status_code == 201, response.text
        if status == "paid":
            paid.append((Decimal(total), _dt(ordered_at)))
    if paid:
        universe.metrics[contact_id] = {
            "order_count": Decimal(len(paid)),
            "total_spent": sum((t for t, _ in paid), Decimal(0)),
            "last_order_at": max(at for _, at in paid),
        }


# The property


async def test_sql_selects_what_the_python_evaluation_selects(
    client: AsyncClient, tenant: Tenant
) -> None:
    universe = await build_universe(client, tenant)
    loop = asyncio.get_running_loop()

    def on_loop(coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=60)

    @settings(
        max_examples=250,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(filters(universe.company_ids))
    def check(filter: dict[str, Any]) -> None:
        expected = sorted(c["id"] for c in universe.contacts if evaluate(universe, c, filter))
        sizes.append(len(expected))
        response = on_loop(
            client.post(
                "/v1/contacts/search",
                json={"filter": filter, "limit": 500},
                headers=tenant.headers,
            )
        )
        assert response.status_code == 200, (filter, response.text)
        assert sorted(c["id"] for c in response.json()["data"]) == expected, filter
        preview = on_loop(
            client.post(
                "/v1/segments/preview", json={"filter": filter, "limit": 1}, headers=tenant.headers
            )
        )
        assert preview.json()["count"] == len(expected), filter

    sizes: list[int] = []
    await asyncio.to_thread(check)
    # Not vacuous: many filters select some contacts but not all of them.
    partial = [n for n in sizes if 0 < n < len(universe.contacts)]
    assert len(partial) > len(sizes) / 4, sizes
