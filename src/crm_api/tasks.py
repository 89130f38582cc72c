"""Every domain's periodic tasks, for the worker (crm-api worker, or serve --with-worker)."""

from datetime import timedelta

from crm_api.analytics.service import run_queued_clv_runs
from crm_api.contacts.occasions import announce_occasions
from crm_api.core.periodic import PeriodicTask
from crm_api.imports.service import run_waiting_imports
from crm_api.loyalty.earning import apply_earning_rules
from crm_api.loyalty.service import expire_points, review_due_tiers
from crm_api.scoring.service import score_leads
from crm_api.segments.service import refresh_due_segments, refresh_stale_members
from crm_api.settings import Settings
from crm_api.tickets.service import announce_due_breaches


def periodic_tasks(settings: Settings) -> list[PeriodicTask]:
    loyalty_every = timedelta(seconds=settings.loyalty_scan_seconds)
    return [
        PeriodicTask(
            "sla breaches", timedelta(seconds=settings.sla_scan_seconds), announce_due_breaches
        ),
        PeriodicTask(
            "imports", timedelta(seconds=settings.import_scan_seconds), run_waiting_imports
        ),
        PeriodicTask(
            "segment members",
            timedelta(seconds=settings.segment_scan_seconds),
            refresh_stale_members,
        ),
        PeriodicTask(
            "segment refresh",
            timedelta(seconds=settings.segment_scan_seconds),
            refresh_due_segments,
        ),
        PeriodicTask("clv runs", timedelta(seconds=settings.clv_scan_seconds), run_queued_clv_runs),
        PeriodicTask("loyalty earning", loyalty_every, apply_earning_rules),
        PeriodicTask("loyalty expiry", loyalty_every, expire_points),
        PeriodicTask("loyalty tiers", loyalty_every, review_due_tiers),
        PeriodicTask(
            "lead scores", timedelta(seconds=settings.lead_score_scan_seconds), score_leads
        ),
        PeriodicTask(
            "occasions", timedelta(seconds=settings.occasion_scan_seconds), announce_occasions
        ),
    ]
