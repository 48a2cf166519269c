"""What every request needs, built once when the app starts and closed when it stops."""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from sqlalchemy import event

from api.outages import SQL, Outages
from api.ratelimits import RateLimits
from models.db import Database
from models.rediskeys import RedisKeys
from models.routing import Routing
from models.settings import Settings

# Each live event stream holds a connection while it waits on XREAD, so the pool is wide;
# a caller past it waits this long for one rather than failing at once.
REDIS_CONNECTIONS = 256
REDIS_WAIT_SECONDS = 10


@dataclass
class Services:
    """The API's settings, SQL database, Redis client, key contract, limits, outages and
    routing table."""

    settings: Settings
    db: Database
    redis: aioredis.Redis
    keys: RedisKeys
    outages: Outages
    rates: RateLimits
    routing: Routing
    routing_loaded_at: int

    @classmethod
    def start(cls, settings: Settings, outages: Outages) -> Services:
        """Build the clients (no connection is opened until first use); a bad routing file
        raises ConfigError here, before the API serves anything."""
        routing = Routing.from_settings(settings)
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.redis_url,
            max_connections=REDIS_CONNECTIONS,
            timeout=REDIS_WAIT_SECONDS,
            socket_connect_timeout=5,
            socket_timeout=30,
        )
        redis = aioredis.Redis(connection_pool=pool, decode_responses=False)
        keys = RedisKeys(settings.redis_prefix)
        db = Database.from_url(settings.sql_url)
        # A connection handed out (after its pre-ping) means SQL answers again.
        event.listen(db.engine, "checkout", lambda *_: outages.up(SQL))
        return cls(
            settings=settings,
            db=db,
            redis=redis,
            keys=keys,
            outages=outages,
            rates=RateLimits(settings, redis, keys, outages),
            routing=routing,
            routing_loaded_at=int(time.time()),
        )

    async def close(self) -> None:
        """Close every client."""
        await self.redis.aclose()
        await self.redis.connection_pool.disconnect()
        self.db.dispose()
