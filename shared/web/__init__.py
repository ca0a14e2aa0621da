"""A small web framework: Request/Response, router, middleware (CORS, rate limit, API keys,
JSON bodies), one error mapping, error reports, the ASGI adapter. It knows no feature package."""
