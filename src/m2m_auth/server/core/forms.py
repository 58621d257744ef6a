"""Form bodies of the token, introspection and revocation endpoints (RFC 6749 §3.2, Appendix B)."""

from __future__ import annotations

from urllib.parse import unquote_plus

from m2m_auth.errors import InvalidRequest
from m2m_auth.server.core.messages import OAuthRequest

__all__ = ["parse_form_request", "FORM_CONTENT_TYPE"]

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
_REPEATABLE = frozenset({"resource"})  # RFC 8707 §2


def parse_form_request(body: bytes, content_type: str | None, authorization: str | None) -> OAuthRequest:
    """Parse by hand: strict UTF-8, repeated parameters refused, empty values treated as absent."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != FORM_CONTENT_TYPE:
        raise InvalidRequest(f"the request body must be {FORM_CONTENT_TYPE}")
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidRequest("the request body must be URL-encoded ASCII") from None
    form: dict[str, str] = {}
    resources: list[str] = []
    if text:
        for pair in text.split("&"):
            if not pair:
                continue
            name, _, value = pair.partition("=")
            try:
                if "%" in pair or "+" in pair:  # most parameters have nothing to decode
                    name = unquote_plus(name, errors="strict")
                    value = unquote_plus(value, errors="strict")
            except UnicodeDecodeError:
                raise InvalidRequest("a parameter is not valid UTF-8") from None
            if "\x00" in name or "\x00" in value:
                raise InvalidRequest("parameters must not contain NUL characters")
            if name in _REPEATABLE:
                if value:
                    resources.append(value)
                continue
            if name in form:
                raise InvalidRequest(f"parameter {name!r} is repeated")
            form[name] = value
    # An empty parameter is the same as an omitted one (RFC 6749 §3.1).
    return OAuthRequest(
        form={k: v for k, v in form.items() if v}, authorization=authorization, resources=tuple(resources)
    )
