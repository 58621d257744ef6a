"""What the core reports happened; the edge counts and logs it (never a secret or token)."""

from __future__ import annotations

__all__ = ["Events"]


class Events:
    """No-op base; the ASGI layer subclasses it to feed metrics and logs."""

    def token_issued(self, client_id: str, token_format: str) -> None:
        pass

    def introspected(self, active: bool) -> None:
        pass

    def request_refused(self, endpoint: str, error: str, detail: str) -> None:
        pass
