"""`QStashService`: the local QStash as one more devstack `Service`.

Keys it adds to the JSON line: ``qstash_url``, ``qstash_token``,
``qstash_current_signing_key``, ``qstash_next_signing_key``. The defaults are the
official dev server's (``npx @upstash/qstash-cli dev``), so one ``.env`` works with
either server.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

from devstack.ports import bound_socket
from devstack.qstash.app import QStashConfig, QStashServer
from devstack.qstash.delivery import Scheduler
from devstack.qstash.store import QStashStore

log = logging.getLogger(__name__)

DEV_TOKEN = "eyJVc2VySUQiOiJkZWZhdWx0VXNlciIsIlBhc3N3b3JkIjoiZGVmYXVsdFBhc3N3b3JkIn0="
DEV_CURRENT_SIGNING_KEY = "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r"
DEV_NEXT_SIGNING_KEY = "sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs"


@dataclass(frozen=True, slots=True)
class QStashOptions:
    """CLI-level settings; ``time_scale`` multiplies every QStash wait (delay, backoff)."""

    host: str = "127.0.0.1"
    port: int = 0
    token: str = DEV_TOKEN
    current_signing_key: str = DEV_CURRENT_SIGNING_KEY
    next_signing_key: str = DEV_NEXT_SIGNING_KEY
    time_scale: float = 1.0
    loopback_only: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.time_scale <= 1000:
            raise ValueError("qstash time scale must be > 0 and <= 1000")


class QStashService:
    """Needs ``redis_url`` from the Redis service started before it."""

    name = "qstash"

    def __init__(self, options: QStashOptions | None = None) -> None:
        self.options = options or QStashOptions()
        self._runner: web.AppRunner | None = None
        self._store: QStashStore | None = None
        self._scheduler: Scheduler | None = None

    async def start(self, info: Mapping[str, object]) -> dict[str, object]:
        opts = self.options
        config = QStashConfig(
            redis_url=str(info["redis_url"]),
            token=opts.token,
            current_signing_key=opts.current_signing_key,
            next_signing_key=opts.next_signing_key,
            time_scale=opts.time_scale,
            loopback_only=opts.loopback_only,
        )
        self._store = QStashStore(config.redis_url)
        self._scheduler = Scheduler(self._store, config.current_signing_key, config.time_scale)
        await self._scheduler.start()
        server = QStashServer(config, self._store, self._scheduler)
        self._runner = web.AppRunner(server.make_app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        sock = bound_socket(opts.host, opts.port)
        port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock, backlog=1024).start()
        url = f"http://{opts.host}:{port}"
        log.info("QStash server on %s (time scale %g)", url, opts.time_scale)
        return {
            "qstash_url": url,
            "qstash_token": opts.token,
            "qstash_current_signing_key": opts.current_signing_key,
            "qstash_next_signing_key": opts.next_signing_key,
        }

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._scheduler is not None:
            await self._scheduler.stop()
        if self._store is not None:
            await self._store.close()
