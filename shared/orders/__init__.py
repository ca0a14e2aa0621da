"""The sample order API: storage, creation with idempotency and an outbox, reading.

Only `shared.orders.models` and `shared.orders.create_handlers` import pydantic, on the
first request that needs them (`shared.orders.api` loads them); everything
else here is standard library so the Worker runs it in offline Pyodide too.
"""
