"""A local QStash: publish API, signed deliveries with retries, DLQ and callbacks, on Redis."""

from devstack.qstash.service import QStashOptions, QStashService

__all__ = ["QStashOptions", "QStashService"]
