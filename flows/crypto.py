"""Encryption at rest: MultiFernet over FLOWGATE_ENCRYPTION_KEYS (newest key first).

Secrets travel through the code as `Secret` objects whose str() and repr() are masked, so a secret
pasted into a log line, a template or an error message shows up as "********", never as its value.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.core.exceptions import ImproperlyConfigured

HOW_TO_MAKE_A_KEY = (
    "Make one with: python -c \"from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())\" "
    "and set FLOWGATE_ENCRYPTION_KEYS=<key> (comma-separated, newest first, to rotate)."
)


class DecryptionError(Exception):
    """A stored secret cannot be read with any configured key."""


def validate_keys(keys: list[str]) -> None:
    if not keys:
        raise ImproperlyConfigured(f"FLOWGATE_ENCRYPTION_KEYS is not set. {HOW_TO_MAKE_A_KEY}")
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key.strip())
        except (ValueError, TypeError):
            raise ImproperlyConfigured(
                f"FLOWGATE_ENCRYPTION_KEYS: key number {position} is not a valid Fernet key "
                f"(32 url-safe base64-encoded bytes). {HOW_TO_MAKE_A_KEY}"
            ) from None


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key.strip()) for key in keys])


def fernet() -> MultiFernet:
    from django.conf import settings

    return _fernet(tuple(settings.FLOWGATE_ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    try:
        return fernet().decrypt(ciphertext.encode()).decode()
    except (InvalidToken, ValueError, TypeError):
        raise DecryptionError(
            "A stored secret cannot be decrypted with any key in FLOWGATE_ENCRYPTION_KEYS. Was a key removed "
            "or replaced? Put the key it was encrypted with back in the list (newest first)."
        ) from None


def rotate(ciphertext: str) -> str:
    """Re-encrypts under the newest key; raises DecryptionError when no key can read it."""
    try:
        return fernet().rotate(ciphertext.encode()).decode()
    except (InvalidToken, ValueError, TypeError):
        decrypt(ciphertext)  # raises the explanatory error
        raise


class Secret:
    """A secret as stored: ciphertext, revealed only on request."""

    __slots__ = ("ciphertext",)

    def __init__(self, ciphertext: str) -> None:
        self.ciphertext = ciphertext

    @classmethod
    def seal(cls, plaintext: str) -> Secret:
        return cls(encrypt(plaintext))

    def reveal(self) -> str:
        return decrypt(self.ciphertext)

    def __str__(self) -> str:
        return "********"

    def __repr__(self) -> str:
        return "Secret('********')"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other.ciphertext == self.ciphertext

    def __hash__(self) -> int:
        return hash(self.ciphertext)


def newest_key_reads(ciphertext: str) -> bool:
    """Whether the newest key alone decrypts `ciphertext`: then re-encrypting it would change nothing."""
    from django.conf import settings

    try:
        _fernet(tuple(settings.FLOWGATE_ENCRYPTION_KEYS[:1])).decrypt(ciphertext.encode())
    except (InvalidToken, ValueError, TypeError):
        return False
    return True
