"""TLS settings in the spelling MySQL users know, turned into an ``ssl.SSLContext``.

Built and checked at construction, so a typo in ``ssl_mode`` or a CA file that
cannot be read fails where the pool is created, naming the option.  asyncmy
upgrades to TLS whenever it is given a context, whatever the server
advertises, so a mode that requires encryption can never fall back to plain
text; the pool also checks the transport after connecting.
"""

from __future__ import annotations

import enum
import os
import ssl
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

__all__ = ["SslMode", "TlsSettings", "tls_from_options"]


class SslMode(enum.Enum):
    """MySQL's ``--ssl-mode`` values."""

    DISABLED = "DISABLED"
    PREFERRED = "PREFERRED"
    REQUIRED = "REQUIRED"
    VERIFY_CA = "VERIFY_CA"
    VERIFY_IDENTITY = "VERIFY_IDENTITY"


_TLS_KEYS = ("ssl_mode", "ssl_ca", "ssl_cert", "ssl_key")


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """What the pool does about TLS on every new connection."""

    mode: SslMode
    context: ssl.SSLContext | None
    # PREFERRED: a server that cannot do TLS gets a plain connection instead.
    fallback_to_plain: bool

    @property
    def must_encrypt(self) -> bool:
        """Whether a connection that is not encrypted must be refused."""
        return self.context is not None and not self.fallback_to_plain


def _parse_mode(value: object) -> SslMode:
    if isinstance(value, SslMode):
        return value
    text = str(value).strip().upper().replace("-", "_")
    try:
        return SslMode(text)
    except ValueError:
        allowed = ", ".join(m.value for m in SslMode)
        raise ValueError(f"ssl_mode={value!r} is not one of: {allowed}") from None


def _readable(option: str, path: object) -> str:
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str) or not path:
        raise ValueError(f"{option} must be a file path, got {path!r}")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise ValueError(f"{option}={path!r} cannot be read: {exc.strerror}") from None
    return path


def _build_context(
    mode: SslMode, ca: str | None, cert: str | None, key: str | None
) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if ca is not None:
        try:
            ctx.load_verify_locations(cafile=ca)
        except ssl.SSLError as exc:
            raise ValueError(f"ssl_ca={ca!r} holds no usable CA certificate: {exc}") from None
    verify = mode in (SslMode.VERIFY_CA, SslMode.VERIFY_IDENTITY) or (
        mode is SslMode.REQUIRED and ca is not None  # as the mysql client does
    )
    ctx.check_hostname = mode is SslMode.VERIFY_IDENTITY
    ctx.verify_mode = ssl.CERT_REQUIRED if verify else ssl.CERT_NONE
    if cert is not None:
        try:
            ctx.load_cert_chain(cert, keyfile=key)
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(
                f"ssl_cert={cert!r} and ssl_key={key!r} do not form a usable "
                f"certificate and key: {exc}"
            ) from None
    return ctx


def tls_from_options(kwargs: MutableMapping[str, Any]) -> TlsSettings:
    """Take the TLS options out of ``kwargs`` and set asyncmy's ``ssl`` keyword.

    ``ssl_mode``, ``ssl_ca``, ``ssl_cert`` and ``ssl_key`` are ours; an
    ``ssl.SSLContext`` passed as ``ssl`` is used as it is (encryption required).
    """
    given = {k: kwargs.pop(k) for k in _TLS_KEYS if k in kwargs}
    custom = kwargs.get("ssl")
    if custom is not None and given:
        raise ValueError(
            "pass either ssl (an SSLContext) or ssl_mode/ssl_ca/ssl_cert/ssl_key, not both"
        )
    if custom is not None:
        if not isinstance(custom, ssl.SSLContext):
            raise ValueError(
                f"ssl must be an ssl.SSLContext (or use ssl_mode=...), got {type(custom).__name__}"
            )
        return TlsSettings(SslMode.REQUIRED, custom, fallback_to_plain=False)
    mode = _parse_mode(given.get("ssl_mode", "DISABLED" if not given else "PREFERRED"))
    ca = _readable("ssl_ca", given["ssl_ca"]) if given.get("ssl_ca") is not None else None
    cert = _readable("ssl_cert", given["ssl_cert"]) if given.get("ssl_cert") is not None else None
    key = _readable("ssl_key", given["ssl_key"]) if given.get("ssl_key") is not None else None
    if (cert is None) != (key is None):
        missing = "ssl_key" if key is None else "ssl_cert"
        raise ValueError(
            f"{missing} is missing: a client certificate needs both ssl_cert and ssl_key"
        )
    if mode is SslMode.VERIFY_CA and ca is None:
        raise ValueError("ssl_mode=VERIFY_CA needs ssl_ca (the CA file to verify against)")
    if mode is SslMode.DISABLED:
        if cert is not None or ca is not None:
            raise ValueError("ssl_mode=DISABLED contradicts ssl_ca/ssl_cert/ssl_key")
        return TlsSettings(mode, None, fallback_to_plain=False)
    context = _build_context(mode, ca, cert, key)
    kwargs["ssl"] = context
    return TlsSettings(mode, context, fallback_to_plain=mode is SslMode.PREFERRED)
