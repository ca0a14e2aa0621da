"""The sample order API: storage, creation with idempotency and an outbox, reading.

Only `shared.orders.models` and `shared.orders.api` import pydantic; everything
else here is standard library so the Worker runs it in offline Pyodide too.
"""
