"""The composition root: builds the services from settings, mounts feature and system routes.

Nothing imports it but the entrypoints (`vercel_api/`, `worker/`), the devstack and tests."""
