"""Signing keys for JWT access tokens: generated here, sealed at rest, rotated without breaking anyone.

Every replica reads the keys from the database and derives the same answers from them:
- the signing key is the newest generation whose `activates_at` has come;
- a key is published in the JWKS from its creation (before it signs: pre-publication) until
  the last token it can have signed has expired (its successor's activation + the longest TTL).
Replicas that create the next generation at the same moment collide on its unique number,
and one wins: no coordination beyond the database.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import os
import secrets as _random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from joserfc.jwk import ECKey, OKPKey, RSAKey

from m2m_auth.server.core.clock import Clock
from m2m_auth.server.core.models import StoredKey
from m2m_auth.server.settings import Settings
from m2m_auth.server.storage.base import KeyStore

__all__ = ["KeyManager", "SigningKey", "KeyConfigError", "KeySealer", "generate_kek", "PrivateKey"]

log = logging.getLogger("m2m_auth.keys")

PrivateKey = RSAKey | ECKey | OKPKey

# Ed25519 signs as "EdDSA": the name every validator knows (RFC 9864's "Ed25519" is still new to many).
_GENERATORS: dict[str, Callable[[], PrivateKey]] = {
    "RS256": lambda: RSAKey.generate_key(2048, private=True),
    "ES256": lambda: ECKey.generate_key("P-256", private=True),
    "EdDSA": lambda: OKPKey.generate_key("Ed25519", private=True),
}
# Tokens signed just before a key's successor took over may still be in use for the longest TTL;
# the margin (at most a minute, at most that TTL) covers validators whose clocks run a little behind.
_UNPUBLISH_MARGIN = 60


class KeyConfigError(RuntimeError):
    """The keys cannot be used as configured (missing or wrong key-encryption key)."""


def generate_kek() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()


class KeySealer:
    """AES-256-GCM with the key-encryption key; the kid is bound in as associated data."""

    def __init__(self, kek: str | None) -> None:
        self._aead: AESGCM | None = None
        if kek:
            try:
                raw = base64.urlsafe_b64decode(kek + "=" * (-len(kek) % 4))
            except (binascii.Error, ValueError):
                raw = b""
            if len(raw) != 32:
                raise KeyConfigError("M2M_AUTH_KEY_ENCRYPTION_KEY must be 32 bytes, base64url-encoded")
            self._aead = AESGCM(raw)

    @property
    def encrypting(self) -> bool:
        return self._aead is not None

    def seal(self, kid: str, private_jwk: dict[str, Any]) -> tuple[bytes, str]:
        plaintext = json.dumps(private_jwk).encode()
        if self._aead is None:
            return plaintext, "none"
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plaintext, kid.encode()), "aes-256-gcm"

    def open(self, stored: StoredKey) -> dict[str, Any]:
        if stored.encryption == "none":
            return dict(json.loads(stored.private_jwk))
        if self._aead is None:
            raise KeyConfigError(
                f"signing key {stored.kid} is encrypted: set M2M_AUTH_KEY_ENCRYPTION_KEY to the key it was sealed with"
            )
        try:
            plaintext = self._aead.decrypt(stored.private_jwk[:12], stored.private_jwk[12:], stored.kid.encode())
        except InvalidTag:
            raise KeyConfigError(
                f"signing key {stored.kid} does not open with this M2M_AUTH_KEY_ENCRYPTION_KEY (wrong key?)"
            ) from None
        return dict(json.loads(plaintext))


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    generation: int
    alg: str
    key: PrivateKey
    public_jwk: dict[str, Any]
    created_at: int
    activates_at: int


class KeyManager:
    def __init__(self, store: KeyStore, settings: Settings, clock: Clock, sealer: KeySealer) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        self._sealer = sealer
        self._keys: list[SigningKey] = []  # by generation, oldest first
        self._by_kid: dict[str, SigningKey] = {}
        self._successor_start: dict[str, int | None] = {}
        self._loaded_at = 0.0
        self._refresh_lock = asyncio.Lock()
        self._soon: set[asyncio.Task[None]] = set()

    # --- reading ----------------------------------------------------------------------------

    def signing_key(self) -> SigningKey:
        now = self._clock.now()
        for key in reversed(self._keys):
            if key.activates_at <= now:
                return key
        raise KeyConfigError("no active signing key")  # start() guarantees one

    def is_published(self, key: SigningKey) -> bool:
        """From creation (it may not sign yet) until the last token it can have signed has expired."""
        successor_start = self._successor_start.get(key.kid)
        if successor_start is None or successor_start > self._clock.now():
            return True
        longest = self._settings.max_access_token_ttl
        return self._clock.now() < successor_start + longest + min(_UNPUBLISH_MARGIN, longest)

    def published(self) -> list[SigningKey]:
        return [k for k in self._keys if self.is_published(k)]

    def all_keys(self) -> list[SigningKey]:
        return list(self._keys)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.public_jwk for k in self.published()]}

    async def verification_key(self, kid: str) -> SigningKey | None:
        """A published key by kid; an unknown kid triggers one reload (another replica may have just rotated)."""
        key = self._by_kid.get(kid)
        if key is None and self._clock.now() - self._loaded_at >= 1.0:
            await self.refresh()
            key = self._by_kid.get(kid)
        if key is None or not self.is_published(key):
            return None
        return key

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        if not self._sealer.encrypting:
            if self._settings.production:
                raise KeyConfigError(
                    "production mode needs M2M_AUTH_KEY_ENCRYPTION_KEY to encrypt signing keys at rest "
                    "(`m2m-auth keys generate-kek` makes one)"
                )
            log.warning(
                "M2M_AUTH_KEY_ENCRYPTION_KEY is not set: JWT signing keys are stored UNENCRYPTED in the database. "
                "Anyone who reads the database can mint tokens. Set it before production."
            )
        else:
            # Keys stored before a key-encryption key was set are sealed now, not left readable.
            for stored in await self._store.list_keys():
                if stored.encryption == "none":
                    sealed, encryption = self._sealer.seal(stored.kid, self._sealer.open(stored))
                    await self._store.reseal_key(stored.kid, sealed, encryption)
                    log.warning(
                        "signing key %s was stored unencrypted: sealed it with the key-encryption key", stored.kid
                    )
        await self.refresh()
        if not self._keys:
            await self._create(generation=1, activates_at=int(self._clock.now()))

    async def refresh(self) -> None:
        async with self._refresh_lock:
            stored = await self._store.list_keys()
            known = {k.kid: k for k in self._keys}
            keys = [known.get(s.kid) or self._open(s) for s in stored]
            self._keys = keys
            self._by_kid = {k.kid: k for k in keys}
            # A key stops signing when a later generation activates.
            self._successor_start = {
                key.kid: min((k.activates_at for k in keys[i + 1 :]), default=None) for i, key in enumerate(keys)
            }
            self._loaded_at = self._clock.now()

    def refresh_soon(self) -> None:
        """Reload in the background: another replica announced a key change (see storage.sql.changes)."""
        task = asyncio.get_running_loop().create_task(self._refresh_logged())
        self._soon.add(task)
        task.add_done_callback(self._soon.discard)

    async def _refresh_logged(self) -> None:
        try:
            await self.refresh()
        except Exception as exc:  # noqa: BLE001 - the maintenance loop retries; a notice must not crash anything
            log.warning("signing-key reload after a change notice failed: %s", type(exc).__name__)

    async def rotate(self, delay: int = 0) -> SigningKey:
        """A new key that signs after `delay` seconds (0: at once, the emergency case)."""
        await self.refresh()
        generation = (self._keys[-1].generation if self._keys else 0) + 1
        return await self._create(generation, int(self._clock.now()) + delay)

    async def maintain(self) -> None:
        """Background duty of every replica: pick up other replicas' keys; schedule the next rotation."""
        interval = self._settings.key_rotation_interval
        while True:
            await asyncio.sleep(self._settings.key_refresh_interval)
            try:
                await self.refresh()
                if interval:
                    newest = self._keys[-1]
                    if newest.activates_at + interval - self._settings.key_prepublish <= self._clock.now():
                        activates = max(
                            newest.activates_at + interval, self._clock.now() + self._settings.key_prepublish
                        )
                        await self._create(newest.generation + 1, int(activates))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the loop must outlive a database outage
                log.warning("signing-key refresh failed, retrying: %s", type(exc).__name__)

    async def _create(self, generation: int, activates_at: int) -> SigningKey:
        alg = self._settings.signing_alg
        kid = _random.token_urlsafe(12)
        private = _GENERATORS[alg]()
        public_jwk = {**private.as_dict(private=False), "kid": kid, "alg": alg, "use": "sig"}
        sealed, encryption = self._sealer.seal(kid, private.as_dict(private=True))
        stored = StoredKey(kid, generation, alg, public_jwk, sealed, encryption, int(self._clock.now()), activates_at)
        if await self._store.add_key(stored):
            log.info("signing key %s (generation %d, %s) created, signs from %d", kid, generation, alg, activates_at)
        await self.refresh()  # whoever won the generation, everyone now loads the same keys
        return next(k for k in self._keys if k.generation == generation)

    def _open(self, stored: StoredKey) -> SigningKey:
        private_jwk = self._sealer.open(stored)
        key = _import(private_jwk)
        return SigningKey(
            stored.kid, stored.generation, stored.alg, key, stored.public_jwk, stored.created_at, stored.activates_at
        )


def _import(jwk: dict[str, Any]) -> PrivateKey:
    kty = jwk.get("kty")
    if kty == "RSA":
        return RSAKey.import_key(jwk)
    if kty == "EC":
        return ECKey.import_key(jwk)
    if kty == "OKP":
        return OKPKey.import_key(jwk)
    raise KeyConfigError(f"unsupported signing key type {kty!r}")
