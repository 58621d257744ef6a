"""Space-delimited scope strings (RFC 6749 §3.3)."""

from __future__ import annotations

import re

__all__ = ["parse_scope", "format_scope", "is_valid_scope_token"]

# scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


def is_valid_scope_token(token: str) -> bool:
    return _SCOPE_TOKEN.fullmatch(token) is not None


def parse_scope(value: str | None) -> tuple[str, ...]:
    """Split a scope string into unique tokens, keeping first-seen order; raises ValueError on bad tokens."""
    if not value:
        return ()
    seen: dict[str, None] = {}
    for token in value.split(" "):
        if not token:
            continue  # tolerate doubled spaces: every client library joins differently
        if not is_valid_scope_token(token):
            raise ValueError(f"invalid scope token {token!r}")
        seen[token] = None
    return tuple(seen)


def format_scope(scopes: tuple[str, ...] | list[str] | frozenset[str]) -> str:
    return " ".join(scopes)
