"""The devstack console: one page showing each API request, its Redis round trips, the
QStash messages and their attempts, the DLQ, the outbox, the emails and Redis's keys."""
