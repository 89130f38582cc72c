"""Schemathesis over every operation of the published spec, against a running server, with
every check it has."""

from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test
from schemathesis import Case

from tests.contract.conftest import LiveServer

SPEC = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"

# The committed document (test_openapi.py keeps it equal to what the app serves). Loaded eagerly:
# schemathesis' lazy fixture loader reads a private attribute pytest 9 no longer has.
schema = schemathesis.openapi.from_path(SPEC)


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation(case: Case, live_server: LiveServer) -> None:
    case.call_and_validate(base_url=live_server.url, headers=live_server.headers)


def test_stateful_workflows(live_server: LiveServer) -> None:
    """Chains of calls that follow the spec's links: create → get / update / delete → …, with
    every check on every response (use after free and resource availability included)."""

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Case) -> dict[str, object]:
            return {"base_url": live_server.url, "headers": live_server.headers}

    run_state_machine_as_test(
        Workflow,
        settings=settings(
            max_examples=40,
            stateful_step_count=8,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
