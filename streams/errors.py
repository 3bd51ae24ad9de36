"""Errors of the streaming shell."""

from __future__ import annotations

__all__ = ["StreamsError", "SettingsError", "InfraUnavailable"]


class StreamsError(Exception):
    """Root of every error raised by `streams`."""


class SettingsError(StreamsError):
    """The configuration is invalid; the message names the offending setting."""


class InfraUnavailable(StreamsError):
    """Kafka or MongoDB did not answer; carries the address that was tried."""

    def __init__(self, service: str, address: str, detail: str = "") -> None:
        self.service = service
        self.address = address
        self.detail = detail
        super().__init__(f"{service} at {address} did not answer" + (f": {detail}" if detail else ""))
