"""Claim names a client's `metadata` must not use: JWT (RFC 7519), RFC 7662, RFC 9068, RFC 8693."""

__all__ = ["REGISTERED_CLAIMS"]

REGISTERED_CLAIMS = frozenset(
    {
        # RFC 7519 §4.1
        "iss", "sub", "aud", "exp", "nbf", "iat", "jti",
        # RFC 7662 §2.2
        "active", "scope", "client_id", "username", "token_type",
        # RFC 9068 §2.2, RFC 8693 §4, RFC 7800, OpenID Connect
        "auth_time", "acr", "amr", "azp", "act", "may_act", "cnf", "typ", "nonce", "sid",
        "groups", "roles", "entitlements",
    }
)  # fmt: skip
