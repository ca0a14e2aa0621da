"""The services ``devstack up`` runs, started in order and stopped in reverse.

Each service contributes keys to the one JSON line printed on startup and can read
the keys of the services started before it (the REST server reads ``redis_url``).
A later QStash server or email sink is one more :class:`Service` in the list.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from aiohttp import web

from devstack.ports import bound_socket
from devstack.redis_process import RedisProcess
from devstack.rest.app import RestConfig, RestServer

log = logging.getLogger(__name__)


class Service(Protocol):
    """A server devstack starts; ``start`` returns the keys it adds to the JSON line."""

    name: str

    async def start(self, info: Mapping[str, object]) -> dict[str, object]: ...

    async def stop(self) -> None: ...


class RedisService:
    """The private Redis child. Keys: ``redis_url``, ``redis_pid``."""

    name = "redis"

    def __init__(self, binary: str, data_dir: Path | None, restart_delay: float) -> None:
        self.process = RedisProcess(binary, data_dir=data_dir, restart_delay=restart_delay)

    async def start(self, info: Mapping[str, object]) -> dict[str, object]:
        await self.process.start()
        return {"redis_url": self.process.url, "redis_pid": self.process.pid}

    async def stop(self) -> None:
        await self.process.stop()


@dataclass(frozen=True, slots=True)
class RestOptions:
    host: str
    port: int
    token: str
    readonly_token: str
    max_request_bytes: int
    latency_s: float = 0.0


class RedisRestService:
    """The Upstash-compatible REST server. Keys: ``redis_rest_url`` and its tokens."""

    name = "redis-rest"

    def __init__(self, options: RestOptions) -> None:
        self.options = options
        self._runner: web.AppRunner | None = None

    async def start(self, info: Mapping[str, object]) -> dict[str, object]:
        url = await self.serve(str(info["redis_url"]))
        return {
            "redis_rest_url": url,
            "redis_rest_token": self.options.token,
            "redis_rest_readonly_token": self.options.readonly_token,
        }

    async def serve(self, redis_url: str) -> str:
        """Serves `redis_url` over REST; returns the REST URL."""
        opts = self.options
        server = RestServer(
            RestConfig(
                redis_url=redis_url,
                token=opts.token,
                readonly_token=opts.readonly_token,
                max_request_bytes=opts.max_request_bytes,
                latency_s=opts.latency_s,
            )
        )
        self._runner = web.AppRunner(server.make_app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        sock = bound_socket(opts.host, opts.port)
        port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock, backlog=1024).start()
        url = f"http://{opts.host}:{port}"
        log.info("Redis REST server on %s", url)
        return url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class RegionsService:
    """Independent Redis "regions" for multi-region work: each its own Valkey child
    behind its own REST server (same tokens). Key: ``regions``, a list of
    ``{"redis_rest_url", "redis_url", "redis_pid", "latency_ms"}``; the first is the
    main stack's own Redis (``redis_rest_url``), the others are extra.
    """

    name = "regions"

    def __init__(
        self,
        count: int,
        binary: str,
        restart_delay: float,
        options: RestOptions,
        latencies_ms: list[float],
    ) -> None:
        self.count = count
        self.binary = binary
        self.restart_delay = restart_delay
        self.options = options
        self.latencies_ms = latencies_ms
        self._redis: list[RedisProcess] = []
        self._rest: list[RedisRestService] = []

    def _latency_ms(self, index: int) -> float:
        return self.latencies_ms[index] if index < len(self.latencies_ms) else 0.0

    async def start(self, info: Mapping[str, object]) -> dict[str, object]:
        regions: list[dict[str, object]] = [
            {
                "redis_rest_url": info["redis_rest_url"],
                "redis_url": info["redis_url"],
                "redis_pid": info["redis_pid"],
                "latency_ms": self._latency_ms(0),
            }
        ]
        for index in range(1, self.count):
            redis = RedisProcess(self.binary, restart_delay=self.restart_delay)
            await redis.start()
            self._redis.append(redis)
            latency = self._latency_ms(index)
            opts = RestOptions(
                host=self.options.host,
                port=0,
                token=self.options.token,
                readonly_token=self.options.readonly_token,
                max_request_bytes=self.options.max_request_bytes,
                latency_s=latency / 1000,
            )
            rest = RedisRestService(opts)
            url = await rest.serve(redis.url)
            self._rest.append(rest)
            regions.append(
                {
                    "redis_rest_url": url,
                    "redis_url": redis.url,
                    "redis_pid": redis.pid,
                    "latency_ms": latency,
                }
            )
        return {"regions": regions}

    async def stop(self) -> None:
        for rest in self._rest:
            await rest.stop()
        for redis in self._redis:
            await redis.stop()
