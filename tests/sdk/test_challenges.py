"""The WWW-Authenticate parser behind the one retry: only a Bearer challenge with error="invalid_token" counts
(RFC 6750 §3, RFC 9110 §11.6.1)."""

from __future__ import annotations

import pytest

from m2m_auth.client.auth import bearer_error


@pytest.mark.parametrize(
    "values,error",
    [
        (['Bearer error="invalid_token"'], "invalid_token"),
        (["Bearer error=invalid_token"], "invalid_token"),
        (['Bearer realm="a, b", error="invalid_token"'], "invalid_token"),
        (['Basic realm="x", Bearer error="insufficient_scope"'], "insufficient_scope"),
        (['Basic realm="x"', 'bearer ERROR="invalid_token"'], "invalid_token"),
        (['Negotiate abc==, Bearer error="invalid_token"'], "invalid_token"),
        (['Basic error="invalid_token"'], None),
        (['Bearer realm="error=\\"invalid_token\\""'], None),
        ([], None),
    ],
    ids=[
        "quoted",
        "unquoted",
        "comma in a quoted realm",
        "second challenge of one header",
        "second header, case-insensitive",
        "after a token68",
        "another scheme",
        "inside a quoted value",
        "no header",
    ],
)
def test_the_challenge_parser(values: list[str], error: str | None) -> None:
    assert bearer_error(values) == error
