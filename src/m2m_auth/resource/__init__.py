"""SDK for services that receive bearer tokens: validate them (introspection or JWT) and enforce scopes.

Needs only httpx and joserfc. The FastAPI dependency is in `m2m_auth.resource.fastapi`, the Flask decorator in
`m2m_auth.resource.flask`; each imports its framework.
"""

from m2m_auth.resource.middleware import BearerAuthMiddleware, require_scopes
from m2m_auth.resource.validators import Claims, IntrospectionValidator, JWTValidator, TokenValidator

__all__ = [
    "TokenValidator",
    "IntrospectionValidator",
    "JWTValidator",
    "Claims",
    "BearerAuthMiddleware",
    "require_scopes",
]
