"""Request bodies must be JSON: a `POST`/`PUT`/`PATCH` with a body and another
`Content-Type` answers 415 before any handler reads it.

Browsers send `text/plain`, form and multipart bodies cross-site without a CORS
preflight ("simple requests"); refusing them means no other web page can make a
visitor's browser create an order. `application/json` (any case, any parameters
such as `; charset=utf-8`) needs a preflight, which CORS answers. Paths in
`exempt` (QStash job deliveries: authenticated by their signature, content type
chosen by the publisher) and requests the router would refuse anyway (404/405)
pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from shared.web.app import MethodScoped, Middleware
from shared.web.errors import HttpError
from shared.web.http import Request, Response
from shared.web.router import Handler

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
JSON_MEDIA_TYPE = "application/json"


def is_json_media_type(content_type: str | None) -> bool:
    """True for `application/json` with any case, whitespace or parameters."""
    if not content_type:
        return False
    return content_type.split(";", 1)[0].strip().lower() == JSON_MEDIA_TYPE


def json_body_middleware(
    *, allowed_methods: Callable[[str], list[str]], exempt: Collection[str] = ()
) -> Middleware:
    """415 `{"error": "Content-Type must be application/json"}` for a non-JSON body."""
    exempt_paths = frozenset(exempt)

    async def middleware(request: Request, call_next: Handler) -> Response:
        if (
            request.method in BODY_METHODS
            and request.body
            and request.path not in exempt_paths
            and not is_json_media_type(request.headers.get("content-type"))
            and request.method in allowed_methods(request.path)
        ):
            raise HttpError(415, "Content-Type must be application/json")
        return await call_next(request)

    return MethodScoped(middleware, BODY_METHODS)
