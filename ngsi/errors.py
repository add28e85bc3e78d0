"""Errors of the NGSI area, by what the caller must do next."""

from __future__ import annotations


class NgsiError(Exception):
    """Base of every error raised by the ngsi package."""


class NotificationError(NgsiError):
    """The request is not an acceptable notification: answer 400 with `message`, store nothing.

    Raised for bodies that are not notifications at all and for invalid headers. The message names the
    offending place (e.g. "data[0]: missing 'id'") and is stable, because integrators see it.
    """

    def __init__(self, message: str, format: str | None = None) -> None:  # noqa: A002 - the format's name
        super().__init__(message)
        self.message = message
        self.format = format  # the notification format, when the body's shape told it (for metrics)
