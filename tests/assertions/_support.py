"""Client keys, hand-built JWTs and a local jwks_uri host for the private_key_jwt tests."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OKPKey, RSAKey

__all__ = [
    "JWT_BEARER",
    "DROP",
    "Key",
    "ClientKeys",
    "b64url",
    "segment",
    "unsigned",
    "hs256",
    "public_jwks",
    "assertion_claims",
    "sign",
    "parts",
    "with_payload",
    "with_header",
    "token_form",
    "post_assertion",
    "assert_invalid_client",
    "JwksHost",
]

# Clients may name Ed25519 signatures "EdDSA"; joserfc 1.8 warns that RFC 9864 deprecates the name.
warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DROP = object()  # as a claim value: leave the claim out

Key = RSAKey | ECKey | OKPKey


@dataclass(frozen=True)
class ClientKeys:
    """A client's key pairs; the server is given only their public halves."""

    rsa: RSAKey
    rsa2: RSAKey
    ec: ECKey
    okp: OKPKey

    @classmethod
    def generate(cls, prefix: str) -> ClientKeys:
        return cls(
            rsa=RSAKey.generate_key(2048, parameters={"kid": f"{prefix}-rsa-1"}),
            rsa2=RSAKey.generate_key(2048, parameters={"kid": f"{prefix}-rsa-2"}),
            ec=ECKey.generate_key("P-256", parameters={"kid": f"{prefix}-ec"}),
            okp=OKPKey.generate_key("Ed25519", parameters={"kid": f"{prefix}-ed25519"}),
        )

    def all(self) -> tuple[Key, ...]:
        return (self.rsa, self.rsa2, self.ec, self.okp)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segment(value: Any) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def _decode_segment(value: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))


def unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    """An `alg: none` style JWT: header and payload, empty signature."""
    return f"{segment(header)}.{segment(claims)}."


def hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    """Signed by hand: joserfc refuses to use public-key material as an HMAC secret (which is the attack)."""
    signing_input = f"{segment({**header, 'alg': 'HS256'})}.{segment(claims)}"
    mac = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def public_jwks(*keys: Key) -> dict[str, Any]:
    return {"keys": [key.as_dict(private=False) for key in keys]}


def assertion_claims(client_id: str, aud: Any, /, *, lifetime: int = 60, **changes: Any) -> dict[str, Any]:
    """Valid RFC 7523 client-assertion claims with a fresh jti; `name=DROP` leaves a claim out."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": client_id,
        "sub": client_id,
        "aud": aud,
        "iat": now,
        "exp": now + lifetime,
        "jti": secrets.token_urlsafe(16),
    }
    for name, value in changes.items():
        if value is DROP:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def sign(key: Key, claims: dict[str, Any], alg: str, **header: Any) -> str:
    """A JWS over `claims`; the header names the key's kid unless `kid=None` is given."""
    protected = {"alg": alg, "kid": key.kid, **header}
    protected = {name: value for name, value in protected.items() if value is not None}
    return jwt.encode(protected, claims, key, algorithms=[alg])


def _changed(members: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    changed = {**members, **changes}
    return {name: value for name, value in changed.items() if value is not DROP}


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The decoded header and payload of a JWS, unverified."""
    header, payload, _ = token.split(".")
    return _decode_segment(header), _decode_segment(payload)


def with_payload(token: str, **changes: Any) -> str:
    """The token with claims changed (`name=DROP` removes one) and its original signature kept."""
    header, payload, signature = token.split(".")
    return f"{header}.{segment(_changed(_decode_segment(payload), changes))}.{signature}"


def with_header(token: str, **changes: Any) -> str:
    """The token with header members changed (`name=DROP` removes one) and its original signature kept."""
    header, payload, signature = token.split(".")
    return f"{segment(_changed(_decode_segment(header), changes))}.{payload}.{signature}"


def token_form(assertion: str, **form: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": JWT_BEARER,
        "client_assertion": assertion,
        **form,
    }


def post_assertion(http: httpx.Client, path: str, assertion: str, **form: str) -> httpx.Response:
    """POST to an OAuth endpoint, authenticating with a client assertion only."""
    if path == "/oauth/token":
        return http.post(path, data=token_form(assertion, **form))
    return http.post(path, data={"client_assertion_type": JWT_BEARER, "client_assertion": assertion, **form})


def assert_invalid_client(response: httpx.Response) -> None:
    """RFC 6749 §5.2 as CONTRACT.md has it: invalid_client is always a 401 with WWW-Authenticate."""
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"
    assert "www-authenticate" in response.headers


@dataclass
class _Route:
    body: bytes
    status: int = 200
    delay: float = 0.0  # before the status line
    trickle: float = 0.0  # between body chunks (each gap shorter than a read timeout, the whole longer)
    location: str | None = None


class JwksHost:
    """A client's jwks_uri host: JSON documents on 127.0.0.1, one per path, and how often each was fetched."""

    def __init__(self) -> None:
        self._routes: dict[str, _Route] = {}
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with host._lock:
                    host._counts[self.path] += 1
                    route = host._routes.get(self.path)
                try:
                    if route is None:
                        self.send_error(404)
                        return
                    time.sleep(route.delay)
                    self.send_response(route.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(route.body)))
                    if route.location:
                        self.send_header("Location", route.location)
                    self.end_headers()
                    if not route.trickle:
                        self.wfile.write(route.body)
                        return
                    for start in range(0, len(route.body), 64):
                        self.wfile.write(route.body[start : start + 64])
                        self.wfile.flush()
                        time.sleep(route.trickle)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the server gave up on us, as it should

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False  # slow handlers must not hold up the end of the session
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="jwks-host", daemon=True)
        self._thread.start()

    def serve(self, path: str, document: Any, **behaviour: Any) -> str:
        """Serve `document` (JSON, or bytes as they are) at `path`; the URL to register as jwks_uri."""
        body = document if isinstance(document, bytes) else json.dumps(document).encode()
        with self._lock:
            self._routes[path] = _Route(body, **behaviour)
        return self.url + path

    def count(self, path: str) -> int:
        with self._lock:
            return self._counts[path]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
