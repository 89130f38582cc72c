"""Rate limits per API key: a quota of requests per fixed window, counted in process memory or,
when CRM_REDIS_URL is set, in Redis, so every server process draws on the same quota. Each
answer tells where the caller stands (IETF RateLimit fields: `RateLimit-Policy` is the
quota and window, `RateLimit` what remains and when it renews); past the quota the answer is a
429 with `Retry-After`. Should Redis fail, requests go through (logged): the limit guards the
service; it must not take it down."""

import logging
import math
import time
import uuid
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter
from limits.errors import StorageError

from crm_api.core.errors import ProblemError
from crm_api.core.roles import Role
from crm_api.settings import Settings

logger = logging.getLogger(__name__)

POLICY = "default"
QUOTA_EXCEEDED = "https://iana.org/assignments/http-problem-types#quota-exceeded"


class QuotaExceeded(ProblemError):
    status, slug, title = 429, "", "Too many requests"

    def body(self, instance: str) -> dict[str, Any]:
        return {**super().body(instance), "type": QUOTA_EXCEEDED}


@dataclass(frozen=True)
class Standing:
    """Where a key stands in its window."""

    quota: int
    window_seconds: int
    remaining: int
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Policy": f'"{POLICY}";q={self.quota};w={self.window_seconds}',
            "RateLimit": f'"{POLICY}";r={self.remaining};t={self.reset_seconds}',
        }


class RateLimiter:
    def __init__(self, settings: Settings, storage: Storage | None = None) -> None:
        self.quota = settings.rate_limit_requests
        self.window_seconds = settings.rate_limit_window_seconds
        self.role_quotas = settings.rate_limit_requests_per_role
        # One limit item per quota, made here rather than for each request.
        self.items = {
            quota: RateLimitItemPerSecond(quota, self.window_seconds)
            for quota in {self.quota, *self.role_quotas.values()}
            if quota > 0
        }
        if storage is None:
            storage = (
                RedisStorage(
                    "async+" + settings.redis_url,
                    implementation="redispy",
                    wrap_exceptions=True,
                    key_prefix="crm-api-rate",
                    # A Redis that hangs must not hang the requests it counts.
                    socket_connect_timeout=0.5,
                    socket_timeout=0.5,
                )
                if settings.redis_url
                else MemoryStorage()
            )
        self.strategy = FixedWindowRateLimiter(storage)

    def quota_of(self, role: Role | None) -> int:
        return self.role_quotas.get(role, self.quota) if role is not None else self.quota

    async def take(self, api_key_id: uuid.UUID, role: Role | None = None) -> Standing | None:
        """Count one request of this key: its standing, or QuotaExceeded past its role's quota
        (or the default); None when there is no limit or the store does not answer."""
        quota = self.quota_of(role)
        if quota == 0:
            return None
        key = str(api_key_id)
        item = self.items[quota]
        try:
            allowed = await self.strategy.hit(item, key)
            stats = await self.strategy.get_window_stats(item, key)
        except StorageError:
            logger.warning("rate limit store unavailable; request let through", exc_info=True)
            return None
        reset = max(1, math.ceil(stats.reset_time - time.time()))
        standing = Standing(quota, self.window_seconds, stats.remaining, reset)
        if not allowed:
            raise QuotaExceeded(
                f"This API key may make {quota} requests per {self.window_seconds} s; "
                f"the quota renews in {reset} s.",
                headers={**standing.headers(), "Retry-After": str(reset)},
                **{"violated-policies": [POLICY]},
            )
        return standing
