"""Generated credentials: client secrets, the bootstrap admin token, opaque access tokens.

SHA-256, not a password hash: every secret here is 256-bit random, so it cannot be guessed or
brute-forced from its digest, and a slow hash (bcrypt, PBKDF2) would only cap throughput.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as _random

__all__ = ["new_secret", "digest", "matches", "CLIENT_SECRET_PREFIX", "ADMIN_TOKEN_PREFIX"]

CLIENT_SECRET_PREFIX = "m2m_cs_"
ADMIN_TOKEN_PREFIX = "m2m_admin_"


def new_secret(prefix: str) -> str:
    """A recognisable prefix (for secret scanners) and 256 bits of randomness, URL-safe."""
    return prefix + _random.token_urlsafe(32)


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def matches(candidate: bytes, stored: bytes) -> bool:
    return hmac.compare_digest(candidate, stored)
