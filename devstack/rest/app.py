"""The aiohttp application: routing, auth, limits and JSON shaping.

Endpoints (Upstash's): ``POST /`` (one JSON command), ``POST /pipeline``,
``POST /multi-exec`` and path-style ``GET|POST /cmd/arg/...``. Devstack-only:
``GET /_devstack/stats`` (``{"http_requests", "commands", "redis_round_trips"}``)
and ``POST /_devstack/stats/reset``, both behind the same bearer tokens.

The JSON forms need the media type ``application/json``; a ``charset=utf-8``
parameter is tolerated (any other parameter or type is a 400).
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from devstack.rest.commands import blocked_reason
from devstack.rest.executor import RedisExecutor, RedisUnavailable, TransactionAborted
from devstack.rest.protocol import (
    RequestError,
    command_from_json,
    command_from_path,
    commands_from_json,
    error_text,
    item_to_json,
)
from devstack.rest.scripts import PreparedCommand, ScriptRegistry

log = logging.getLogger(__name__)

JSON_FORMS = frozenset({"/", "/pipeline", "/multi-exec"})
STATS_PATH = "/_devstack/stats"


@dataclass(frozen=True, slots=True)
class RestConfig:
    """Settings of one REST server."""

    redis_url: str
    token: str
    readonly_token: str
    max_request_bytes: int = 1024 * 1024
    latency_s: float = 0.0
    """Added before every answer: a far-away region, for multi-region tests and benches."""


class _Refused(Exception):
    """A command refused before reaching Redis (blocked, or read-only token)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _error(message: str, status: int) -> web.Response:
    return web.json_response({"error": message}, status=status)


class RestServer:
    """Request handling for one Redis; build the app with :meth:`make_app`."""

    def __init__(self, config: RestConfig) -> None:
        self.config = config
        self.executor = RedisExecutor(config.redis_url)
        self.scripts = ScriptRegistry()
        self._sync = itertools.count(1)

    def make_app(self) -> web.Application:
        app = web.Application(
            client_max_size=self.config.max_request_bytes + 1,
            middlewares=[self._middleware],
        )
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        app.on_response_prepare.append(self._add_sync_token)
        app.on_cleanup.append(self._cleanup)
        return app

    async def _cleanup(self, _app: web.Application) -> None:
        await self.executor.close()

    async def _add_sync_token(self, _req: web.Request, resp: web.StreamResponse) -> None:
        resp.headers["upstash-sync-token"] = str(next(self._sync))

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if self.config.latency_s > 0 and request.path != STATS_PATH:
            await asyncio.sleep(self.config.latency_s)
        try:
            return await handler(request)
        except RequestError as exc:
            return _error(str(exc), 400)
        except _Refused as exc:
            return _error(exc.message, exc.status)
        except RedisUnavailable as exc:
            log.warning("Redis unavailable: %s", exc)
            return _error(f"ERR Redis server unavailable: {exc}", 500)
        except web.HTTPException as exc:
            return _error(exc.reason or "ERR request refused", exc.status)
        except Exception:
            log.exception("unexpected error handling %s %s", request.method, request.path)
            return _error("ERR internal server error", 500)

    def _token_of(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return request.query.get("_token")

    def _authorize(self, request: web.Request) -> bool:
        """True for the full token, False for the read-only one; raises otherwise."""
        token = (self._token_of(request) or "").encode()
        if hmac.compare_digest(token, self.config.token.encode()):
            return True
        if hmac.compare_digest(token, self.config.readonly_token.encode()):
            return False
        raise _Refused("Unauthorized", 401)

    async def _read_body(self, request: web.Request) -> bytes:
        limit = self.config.max_request_bytes
        declared = request.content_length
        if declared is not None and declared > limit:
            raise _Refused(_too_large(limit, declared))
        chunks: list[bytes] = []
        size = 0
        while chunk := await request.content.readany():
            size += len(chunk)
            if size > limit:
                raise _Refused(_too_large(limit, size))
            chunks.append(chunk)
        return b"".join(chunks)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "POST"):
            return _error(f"ERR method {request.method} not allowed (use GET or POST)", 405)
        path = request.path
        if path == "/" and request.method == "GET" and not request.query:
            return web.json_response({"status": "ok", "service": "devstack redis rest"})
        writable = self._authorize(request)
        if path.startswith(STATS_PATH):
            return self._stats(request)
        self.executor.stats.http_requests += 1
        body = await self._read_body(request)
        encode64 = request.headers.get("Upstash-Encoding", "").lower() == "base64"
        if path in JSON_FORMS:
            if request.method != "POST":
                return _error(f"ERR {path} expects POST with a JSON body", 405)
            value = _json_body(request, body)
            if path == "/":
                return await self._single(command_from_json(value), writable, encode64)
            commands = commands_from_json(value)
            if path == "/pipeline":
                return await self._pipeline(commands, writable, encode64)
            return await self._multi_exec(commands, writable, encode64)
        args = command_from_path(request.raw_path, body)
        return await self._single(args, writable, encode64)

    def _stats(self, request: web.Request) -> web.Response:
        stats = self.executor.stats
        if request.path == f"{STATS_PATH}/reset" and request.method == "POST":
            stats.reset()
        elif request.path != STATS_PATH:
            return _error("ERR unknown devstack endpoint", 404)
        return web.json_response(stats.as_dict())

    async def _check(self, args: list[bytes], writable: bool) -> PreparedCommand:
        reason = blocked_reason(args)
        if reason:
            raise _Refused(reason)
        if not writable and (await self.executor.command_table()).refused_for_read_only(args):
            name = args[0].decode("utf-8", "replace")
            raise _Refused(
                f"NOPERM this user has no permissions to run the '{name}' command "
                "(read-only token)",
                403,
            )
        return self.scripts.prepare(args)

    async def _single(self, args: list[bytes], writable: bool, b64: bool) -> web.Response:
        prepared = await self._check(args, writable)
        (reply,) = await self.executor.run([prepared])
        item = item_to_json(reply, base64_encoding=b64)
        return web.json_response(item, status=400 if "error" in item else 200)

    async def _pipeline(
        self, commands: list[list[bytes]], writable: bool, b64: bool
    ) -> web.Response:
        results: list[dict[str, object] | None] = []
        to_run: list[PreparedCommand] = []
        for args in commands:
            try:
                to_run.append(await self._check(args, writable))
                results.append(None)
            except _Refused as exc:
                results.append({"error": exc.message})
        replies = iter(await self.executor.run(to_run) if to_run else [])
        body = [
            item if item is not None else item_to_json(next(replies), base64_encoding=b64)
            for item in results
        ]
        return web.json_response(body)

    async def _multi_exec(
        self, commands: list[list[bytes]], writable: bool, b64: bool
    ) -> web.Response:
        prepared = [await self._check(args, writable) for args in commands]
        try:
            replies = await self.executor.run_transaction(prepared)
        except TransactionAborted as exc:
            return _error(error_text(exc.error), 400)
        return web.json_response([item_to_json(r, base64_encoding=b64) for r in replies])


def _json_body(request: web.Request, body: bytes) -> object:
    if not _is_json_media_type(request.headers.get("Content-Type", "")):
        raise RequestError(
            "ERR expected Content-Type: application/json for a JSON command body "
            f"(got {request.headers.get('Content-Type', 'none')!r})"
        )
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(f"ERR expected a JSON body: {exc}") from exc


def _is_json_media_type(value: str) -> bool:
    media, *params = (part.strip().lower() for part in value.split(";"))
    if media != "application/json":
        return False
    return all(param.replace(" ", "") in ("charset=utf-8", 'charset="utf-8"') for param in params)


def _too_large(limit: int, actual: int) -> str:
    return f"ERR max request size exceeded. Limit: {limit} bytes, Actual: {actual} bytes"
