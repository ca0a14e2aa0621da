"""A local Resend-compatible email API that captures emails instead of delivering them."""

from devstack.email_sink.service import EmailSinkOptions, EmailSinkService

__all__ = ["EmailSinkOptions", "EmailSinkService"]
