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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from joserfc.jwk import ECKey, OKPKey, RSAKey

from m2m_auth.server.core.clock import Clock
from m2m_auth.server.core.models import StoredKey
from m2m_auth.server.settings import Settings
from m2m_auth.server.storage.base import KeyStore

__all__ = [
    "KeyManager",
    "SigningKey",
    "KeyConfigError",
    "KeySealer",
    "ResealResult",
    "reseal_keys",
    "generate_kek",
    "PrivateKey",
]

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
    """AES-256-GCM with the key-encryption key; the kid is bound in as associated data.

    Earlier key-encryption keys (`previous`) still open what they sealed, so that the key can be
    changed: the current key seals, every key opens, and `reseal_keys` moves old seals to the current key.
    """

    def __init__(self, kek: str | None, previous: Sequence[str] = ()) -> None:
        self._aead: AESGCM | None = _aead(kek, "M2M_AUTH_KEY_ENCRYPTION_KEY") if kek else None
        if previous and self._aead is None:
            raise KeyConfigError(
                "M2M_AUTH_KEY_ENCRYPTION_KEY_PREVIOUS needs M2M_AUTH_KEY_ENCRYPTION_KEY (the key to reseal with)"
            )
        self._previous = [_aead(k, "M2M_AUTH_KEY_ENCRYPTION_KEY_PREVIOUS") for k in previous]

    @classmethod
    def from_settings(cls, settings: Settings) -> KeySealer:
        current = settings.key_encryption_key
        previous = settings.key_encryption_key_previous
        return cls(
            current.get_secret_value() if current else None,
            [k.strip() for k in previous.get_secret_value().split(",") if k.strip()] if previous else (),
        )

    @property
    def encrypting(self) -> bool:
        return self._aead is not None

    @property
    def has_previous(self) -> bool:
        return bool(self._previous)

    def seal(self, kid: str, private_jwk: dict[str, Any]) -> tuple[bytes, str]:
        plaintext = json.dumps(private_jwk).encode()
        if self._aead is None:
            return plaintext, "none"
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plaintext, kid.encode()), "aes-256-gcm"

    def open(self, stored: StoredKey) -> dict[str, Any]:
        return self.unseal(stored)[0]

    def unseal(self, stored: StoredKey) -> tuple[dict[str, Any], bool]:
        """The private JWK, and whether it is sealed as `seal` would seal it now (with the current key)."""
        if stored.encryption == "none":
            return dict(json.loads(stored.private_jwk)), self._aead is None
        if self._aead is None:
            raise KeyConfigError(
                f"signing key {stored.kid} is encrypted: set M2M_AUTH_KEY_ENCRYPTION_KEY to the key it was sealed with"
            )
        nonce, ciphertext, kid = stored.private_jwk[:12], stored.private_jwk[12:], stored.kid.encode()
        for i, aead in enumerate([self._aead, *self._previous]):
            try:
                return dict(json.loads(aead.decrypt(nonce, ciphertext, kid))), i == 0
            except InvalidTag:
                continue
        tried = " nor with any M2M_AUTH_KEY_ENCRYPTION_KEY_PREVIOUS" if self._previous else ""
        raise KeyConfigError(
            f"signing key {stored.kid} does not open with this M2M_AUTH_KEY_ENCRYPTION_KEY{tried} (wrong key?)"
        )


def _aead(kek: str, name: str) -> AESGCM:
    try:
        raw = base64.urlsafe_b64decode(kek + "=" * (-len(kek) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise KeyConfigError(f"{name} must be 32 bytes, base64url-encoded")  # never echo the value
    return AESGCM(raw)


@dataclass(frozen=True, slots=True)
class ResealResult:
    resealed: list[str]  # kids this process rewrote
    total: int  # signing keys stored
    stale: int  # keys still not sealed with the current key-encryption key afterwards


async def reseal_keys(store: KeyStore, sealer: KeySealer) -> ResealResult:
    """Seal every stored signing key with the current key-encryption key (from a previous one, or from none).

    Safe while other processes do the same: each rewrite replaces only the bytes it read, so of two
    concurrent reseals one writes and the other finds its work done; every key stays readable throughout.
    Raises KeyConfigError if a key opens with none of the configured keys, before anything is written.
    """
    if not sealer.encrypting:
        raise KeyConfigError("nothing to seal with: set M2M_AUTH_KEY_ENCRYPTION_KEY (`m2m-auth keys generate-kek`)")
    opened = [(stored, *sealer.unseal(stored)) for stored in await store.list_keys()]
    resealed: list[str] = []
    for stored, private_jwk, current in opened:
        if current:
            continue
        sealed, encryption = sealer.seal(stored.kid, private_jwk)
        if await store.reseal_key(stored.kid, sealed, encryption, expected=stored.private_jwk):
            resealed.append(stored.kid)
            before = (
                "stored unencrypted" if stored.encryption == "none" else "sealed with a previous key-encryption key"
            )
            log.warning("signing key %s was %s: resealed it with the current key-encryption key", stored.kid, before)
    keys = await store.list_keys()
    # Another process may have rewritten a key meanwhile: count what is left, from what is stored now.
    return ResealResult(resealed, len(keys), sum(not sealer.unseal(k)[1] for k in keys))


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
            # Keys stored unencrypted, or sealed with a previous key-encryption key, are resealed now.
            result = await reseal_keys(self._store, self._sealer)
            if self._sealer.has_previous and not result.stale:
                log.info(
                    "every signing key is sealed with M2M_AUTH_KEY_ENCRYPTION_KEY: "
                    "M2M_AUTH_KEY_ENCRYPTION_KEY_PREVIOUS is no longer needed to open them"
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
