"""Parsing and validating what the user passes to a pool.

Everything here runs at construction, before any event loop is involved, so a
wrong argument fails at the line that created the pool with a ``ValueError``
naming the argument.  The password is kept out of every ``repr`` and message.
"""

from __future__ import annotations

import difflib
import inspect
import math
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ._tls import TlsSettings, tls_from_options

__all__ = ["ConnectOptions", "PoolLimits", "check_factory_kwargs", "parse_url", "redact_url"]

SCHEMES = frozenset({"mysql", "mariadb", "mysql+asyncmy", "mariadb+asyncmy"})

DEFAULT_CONNECT_TIMEOUT = 10.0

# Query options a URL may carry, with the converter that turns the text into
# the type asyncmy expects.  Anything else in a URL is a typo we report.
_INT_OPTIONS = frozenset({"max_allowed_packet", "stmt_cache_size", "local_infile"})
_FLOAT_OPTIONS = frozenset({"connect_timeout", "read_timeout"})
_BOOL_OPTIONS = frozenset({"autocommit", "binary_prefix", "use_unicode"})
_STR_OPTIONS = frozenset(
    {
        "charset",
        "unix_socket",
        "init_command",
        "sql_mode",
        "program_name",
        "user",
        "password",
        "ssl_mode",
        "ssl_ca",
        "ssl_cert",
        "ssl_key",
    }
)
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _parse_bool(name: str, text: str) -> bool:
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(f"URL option {name}={text!r} is not a boolean (use true/false, 1/0, on/off)")


def _parse_number(name: str, text: str, kind: type[int] | type[float]) -> int | float:
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"URL option {name}={text!r} is not a valid {kind.__name__}") from None


def _convert_option(name: str, text: str) -> Any:
    if name in _INT_OPTIONS:
        return _parse_number(name, text, int)
    if name in _FLOAT_OPTIONS:
        return _parse_number(name, text, float)
    if name in _BOOL_OPTIONS:
        return _parse_bool(name, text)
    if name in _STR_OPTIONS:
        return text
    known = sorted(_INT_OPTIONS | _FLOAT_OPTIONS | _BOOL_OPTIONS | _STR_OPTIONS)
    raise ValueError(f"unknown URL option {name!r}; known options: {', '.join(known)}")


_QUERY_PASSWORD = re.compile(r"(?i)([?&;]password=)[^&;#]*")


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``.

    Works on the raw text, not on ``urlsplit``: a password pasted without
    percent-escapes (``/``, ``#``, ``@`` in it) or a URL without a scheme must
    not leak either.  Everything between the scheme and the last ``@`` is
    user information; a ``password=`` query option is redacted too.
    """
    text = str(url)
    start = text.find("://")
    start = 0 if start < 0 else start + 3
    at = text.rfind("@")
    if at >= start:
        user, colon, _ = text[start:at].partition(":")
        if colon:
            text = f"{text[:start]}{user}:***{text[at:]}"
    return _QUERY_PASSWORD.sub(r"\1***", text)


_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _unescaped_hint(parts: Any) -> str:
    # urlsplit ends the host part at the first '/', '?' or '#': one inside the
    # password leaves ':pass' looking like a port, and an '@' further on.
    if "@" in f"{parts.path}?{parts.query}#{parts.fragment}":
        return (
            "; if the password contains '/', '?', '#' or '@', escape them with %XX "
            "('/' is %2F, '?' %3F, '#' %23, '@' %40)"
        )
    return ""


def parse_url(url: str) -> dict[str, Any]:
    """Turn a ``mysql://`` or ``mariadb://`` URL into ``asyncmy.connect`` keywords.

    ``mysql://user:pa%40ss@host:3306/db?charset=utf8mb4&connect_timeout=5``
    """
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ValueError(f"url {shown!r} is not a valid URL: {exc}") from None
    if parts.scheme.lower() not in SCHEMES:
        raise ValueError(
            f"url {shown!r} has scheme {parts.scheme!r}; expected one of: "
            + ", ".join(sorted(SCHEMES))
        )
    try:
        port = parts.port
    except ValueError:
        raise ValueError(
            f"url {shown!r} has a bad port (expected a number 1-65535){_unescaped_hint(parts)}"
        ) from None
    if port == 0:
        raise ValueError(f"url {shown!r} has a bad port (expected a number 1-65535)")
    for what, text in (("user", parts.username), ("password", parts.password)):
        if text is not None and _BAD_ESCAPE.search(text):
            raise ValueError(
                f"url {shown!r}: the {what} has a '%' that is not a %XX escape; "
                "write a literal '%' as %25"
            )
    kwargs: dict[str, Any] = {}
    if parts.hostname:
        kwargs["host"] = unquote(parts.hostname)
    if port is not None:
        kwargs["port"] = port
    if parts.username:
        kwargs["user"] = unquote(parts.username)
    if parts.password is not None:
        kwargs["password"] = unquote(parts.password)
    database = unquote(parts.path.lstrip("/"))
    if "/" in database:
        raise ValueError(f"url {shown!r} has a bad database name {database!r}")
    if database:
        kwargs["database"] = database
    for name, text in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
        kwargs[name] = _convert_option(name, text)
    return kwargs


def _check_duration(name: str, value: object, *, allow_zero: bool, allow_inf: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}")
    seconds = float(value)
    if math.isnan(seconds):
        raise ValueError(f"{name} must be a number of seconds, got NaN")
    if seconds < 0 or (seconds == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound} seconds, got {value!r}")
    if math.isinf(seconds) and not allow_inf:
        raise ValueError(f"{name} must be finite, got {value!r}")
    return seconds


def _check_count(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class PoolLimits:
    """The pool's validated sizes and durations (seconds; ``inf`` switches a limit off)."""

    min_size: int
    max_size: int
    timeout: float
    max_waiting: int
    max_lifetime: float
    max_idle: float
    check_after: float | None
    keepalive: float | None

    @classmethod
    def build(
        cls,
        *,
        min_size: object,
        max_size: object,
        timeout: object,
        max_waiting: object,
        max_lifetime: object,
        max_idle: object,
        check_after: object,
        keepalive: object,
    ) -> PoolLimits:
        """Validate every argument, naming the first bad one in a ``ValueError``."""
        lo = _check_count("min_size", min_size, 0)
        hi = _check_count("max_size", max_size, 1)
        if lo > hi:
            raise ValueError(f"min_size ({lo}) must not be greater than max_size ({hi})")
        return cls(
            min_size=lo,
            max_size=hi,
            timeout=_check_duration("timeout", timeout, allow_zero=True, allow_inf=True),
            max_waiting=_check_count("max_waiting", max_waiting, 0),
            max_lifetime=_check_duration(
                "max_lifetime", max_lifetime, allow_zero=False, allow_inf=True
            ),
            max_idle=_check_duration("max_idle", max_idle, allow_zero=False, allow_inf=True),
            check_after=None
            if check_after is None
            else _check_duration("check_after", check_after, allow_zero=True, allow_inf=True),
            keepalive=None
            if keepalive is None
            else _check_duration("keepalive", keepalive, allow_zero=False, allow_inf=True),
        )

    def with_sizes(self, min_size: object, max_size: object) -> PoolLimits:
        """A copy with new sizes, validated like the constructor's."""
        return PoolLimits.build(
            min_size=min_size,
            max_size=max_size,
            timeout=self.timeout,
            max_waiting=self.max_waiting,
            max_lifetime=self.max_lifetime,
            max_idle=self.max_idle,
            check_after=self.check_after,
            keepalive=self.keepalive,
        )


PasswordSource = Callable[[], "str | Awaitable[str]"]
"""A callable (sync or async) asked for the password before every new connection."""


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    """Keyword arguments for ``asyncmy.connect`` plus our own connect settings."""

    kwargs: Mapping[str, Any] = field(repr=False)
    connect_timeout: float
    tls: TlsSettings = field(repr=False)
    # For rotating credentials (cloud IAM tokens): called for every new connection.
    password_source: PasswordSource | None = field(default=None, repr=False)

    @classmethod
    def build(cls, url: str | None, overrides: Mapping[str, Any]) -> ConnectOptions:
        """Merge the URL's options with keyword arguments (which win)."""
        if url is not None and not isinstance(url, str):
            raise ValueError(f"url must be a string or None, got {type(url).__name__}")
        merged: dict[str, Any] = parse_url(url) if url else {}
        overrides = dict(overrides)
        if "db" in overrides:
            # db= is asyncmy's alias of database=: as a keyword it wins over the URL.
            db = overrides.pop("db")
            if "database" in overrides and overrides["database"] != db:
                raise ValueError(
                    f"db={db!r} and database={overrides['database']!r} disagree; "
                    "pass only database="
                )
            overrides.setdefault("database", db)
        merged.update(overrides)
        for key in ("host", "user", "database", "unix_socket", "charset"):
            value = merged.get(key)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{key} must be a string, got {type(value).__name__}")
        charset = merged.get("charset")
        if charset:
            from asyncmy.charset import charset_by_name

            if charset_by_name(charset) is None:
                raise ValueError(f"charset={charset!r} is not a character set asyncmy knows")
        if merged.get("read_timeout") is not None:
            merged["read_timeout"] = _check_duration(
                "read_timeout", merged["read_timeout"], allow_zero=False, allow_inf=False
            )
        if "port" in merged:
            port = merged["port"]
            if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
                raise ValueError(f"port must be an integer 1-65535, got {port!r}")
        timeout = _check_duration(
            "connect_timeout",
            merged.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT),
            allow_zero=False,
            allow_inf=False,
        )
        # asyncmy uses it for the TCP connect only; we bound the whole login with it too.
        merged["connect_timeout"] = timeout
        tls = tls_from_options(merged)
        password = merged.get("password")
        source: PasswordSource | None = None
        if callable(password):
            source = merged.pop("password")
        elif password is not None and not isinstance(password, str | bytes):
            raise ValueError(
                "password must be a string or a callable returning one, "
                f"got {type(password).__name__}"
            )
        return cls(kwargs=merged, connect_timeout=timeout, tls=tls, password_source=source)

    @property
    def address(self) -> str:
        """Where connections go, without the password: ``user@host:port/db``."""
        kw = self.kwargs
        user = kw.get("user")
        who = f"{user}@" if user else ""
        if kw.get("unix_socket"):
            where = str(kw["unix_socket"])
        else:
            where = f"{kw.get('host', 'localhost')}:{kw.get('port', 3306)}"
        db = kw.get("database")
        return f"{who}{where}/{db}" if db else f"{who}{where}"

    def __repr__(self) -> str:
        return f"ConnectOptions({self.address!r}, connect_timeout={self.connect_timeout})"


def check_factory_kwargs(
    names: Iterable[str], factory: Callable[..., Any], factory_label: str, own: Iterable[str]
) -> None:
    """Refuse at construction a keyword the connection factory would reject at ``open()``.

    ``names`` are the keywords that will reach ``factory``; ``own`` are the
    pool's own parameters, offered as suggestions with the factory's.
    """
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return  # no signature to check against (some C callables)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = {
        name
        for name, p in params.items()
        if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    }
    for name in names:
        if name not in accepted:
            close = difflib.get_close_matches(name, [*own, *accepted], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise TypeError(
                f"unexpected keyword argument {name!r}: not a pool argument, and "
                f"{factory_label} does not accept it{hint}"
            )


def check_connect_kwargs(
    names: Iterable[str], factory: Callable[..., Any] | None, pool_init: Callable[..., Any]
) -> None:
    """A typo such as ``max_sise=10`` fails at construction, not at ``open()``.

    ``names`` reach ``factory`` (None: ``asyncmy.connect``); ``pool_init`` is
    the pool's ``__init__``, whose keyword parameters are offered as suggestions.
    """
    target: Callable[..., Any]
    if factory is None:
        import asyncmy

        target, label = asyncmy.connect, "asyncmy.connect()"
    else:
        target = factory
        label = f"the connection_factory {getattr(factory, '__qualname__', factory)!r}"
    # Suggestions: the pool's keyword parameters, not ``self`` nor ``**connect_kwargs``
    # (a misspelt keyword would otherwise be told "did you mean 'connect_kwargs'?").
    own = [
        name
        for name, p in inspect.signature(pool_init).parameters.items()
        if name != "self"
        and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]
    check_factory_kwargs(names, target, label, own)


def check_pool_arguments(
    *,
    name: object,
    callbacks: Mapping[str, object],
    flags: Mapping[str, object],
    listeners: object,
) -> None:
    """Refuse, naming the argument, what the pool's constructor cannot use.

    ``callbacks`` must be callables (or None), ``flags`` bools, ``listeners``
    an iterable of listener objects and ``name`` a string (or None).
    """
    if name is not None and not isinstance(name, str):
        raise ValueError(f"name must be a string, got {type(name).__name__}")
    for arg, value in callbacks.items():
        if value is not None and not callable(value):
            raise TypeError(
                f"{arg} must be a callable (an async function), got {type(value).__name__}"
            )
    for arg, value in flags.items():
        if not isinstance(value, bool):
            raise TypeError(f"{arg} must be True or False, got {value!r}")
    if isinstance(listeners, str | bytes) or not isinstance(listeners, Iterable):
        raise TypeError(
            f"listeners must be a list of listener objects, got {type(listeners).__name__}"
        )
