"""The framework-neutral, async core shared by the Worker and the Vercel function.

Standard library only (plus an injected HTTP transport), except `shared.orders`,
which uses pydantic for the sample app's models.
"""
