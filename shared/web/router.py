"""A small router: `{name}` path parameters, 404 for unknown paths, 405 with `Allow`."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from shared.web.errors import HttpError
from shared.web.http import Request, Response

Handler = Callable[[Request], Awaitable[Response]]
_PARAM = re.compile(r"\{([a-zA-Z_][a-zA-Z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    pattern: str
    regex: re.Pattern[str]
    handler: Handler


def _compile(pattern: str) -> re.Pattern[str]:
    if not pattern.startswith("/"):
        raise ValueError(f"route pattern must start with '/': {pattern!r}")
    parts, pos = [], 0
    for match in _PARAM.finditer(pattern):
        parts.append(re.escape(pattern[pos : match.start()]))
        parts.append(f"(?P<{match.group(1)}>[^/]+)")
        pos = match.end()
    parts.append(re.escape(pattern[pos:]))
    return re.compile("^" + "".join(parts) + "$")


class Router:
    def __init__(self) -> None:
        self._routes: list[Route] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append(Route(method.upper(), pattern, _compile(pattern), handler))

    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.add(method, pattern, handler)
            return handler

        return register

    def include(self, other: Router) -> None:
        self._routes.extend(other._routes)

    def allowed_methods(self, path: str) -> list[str]:
        methods = {r.method for r in self._routes if r.regex.match(path)}
        if "GET" in methods:
            methods.add("HEAD")
        return sorted(methods)

    async def dispatch(self, request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        allowed: set[str] = set()
        for route in self._routes:
            match = route.regex.match(request.path)
            if match is None:
                continue
            if route.method != method:
                allowed.add(route.method)
                continue
            params = match.groupdict()
            response = await route.handler(
                request.evolve(path_params=params) if params else request
            )
            if request.method == "HEAD":
                response.body = b""
            return response
        if allowed:
            allow = ", ".join(sorted(allowed | ({"HEAD"} if "GET" in allowed else set())))
            raise HttpError(405, "Method not allowed", headers={"allow": allow})
        raise HttpError(404, "Not found")
