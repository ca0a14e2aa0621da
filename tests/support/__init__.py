"""The one home of helpers that more than one test module needs (import them from here;
never copy one into a test module):

- `waiting`: `wait_for` / `eventually`, polling a condition until a deadline.
- `inprocess`: the real app in this process (`build_app` + `AsgiAdapter` +
  `httpx.ASGITransport`): `app_client` (an `AppClient`), `app_test_env`, `BASE_URL`.
- `served`: an ASGI app served by uvicorn in a thread on a loopback port (`served_app`,
  `uvicorn_in_thread`, `loopback_socket`), for tests that need a real URL (QStash delivers).
- `loopback`: a tiny aiohttp server on a free loopback port around one handler.
- `transports`: `CountingTransport`, the real httpx transport recording every request.
- `identities`: `unique_email`, `fresh_address`: nobody else's budget or inbox.
- `deliveries`: signed QStash deliveries for the app's routes, without waiting for QStash.

Fixtures stay in the `conftest.py` nearest their users; what is here is plain code. A
helper only one folder needs lives next to its users (`tests/qstash/qstash_sink.py`,
`tests/ratelimit/decisions.py`, `tests/ratelimit/upstream_node.py`).
"""
