"""Cloudflare Python Worker entrypoint: wires the platform to the shared app.

Uploaded as module `entry` at the bundle root, so imports are absolute.
"""

from workers import WorkerEntrypoint

from worker_adapter import WorkerApp

APP = WorkerApp()


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return await APP.fetch(request, self.env, self.ctx)

    async def scheduled(self, controller, env, ctx):
        await APP.scheduled(controller, env, ctx)
