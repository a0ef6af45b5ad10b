"""URL parsing and argument validation (no server needed)."""

from __future__ import annotations

import pytest

from aiopool import AsyncConnectionPool
from aiopool._config import ConnectOptions, parse_url, redact_url


def test_full_url() -> None:
    kw = parse_url(
        "mysql://app:p%40ss%3Aw%2Frd@db.example:3307/shop?charset=latin1&connect_timeout=2.5"
    )
    assert kw == {
        "host": "db.example",
        "port": 3307,
        "user": "app",
        "password": "p@ss:w/rd",
        "database": "shop",
        "charset": "latin1",
        "connect_timeout": 2.5,
    }


def test_mariadb_scheme_and_options() -> None:
    kw = parse_url(
        "mariadb://root@localhost/test?unix_socket=/run/mysqld/mysqld.sock&autocommit=on"
    )
    assert kw["unix_socket"] == "/run/mysqld/mysqld.sock"
    assert kw["autocommit"] is True


def test_keyword_arguments_win_over_the_url() -> None:
    opts = ConnectOptions.build(
        "mysql://a:b@h:1234/db?charset=latin1", {"charset": "utf8mb4", "port": 3306}
    )
    assert opts.kwargs["charset"] == "utf8mb4" and opts.kwargs["port"] == 3306
    assert opts.connect_timeout == 10.0


def test_db_alias() -> None:
    opts = ConnectOptions.build(None, {"db": "x", "host": "h"})
    assert opts.kwargs["database"] == "x" and "db" not in opts.kwargs


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgres://u@h/db", "scheme 'postgres'"),
        ("mysql://u@h:notaport/db", "bad port"),
        ("mysql://u@h:70000/db", "bad port"),
        ("mysql://u@h/db?chrset=utf8", "unknown URL option 'chrset'"),
        ("mysql://u@h/db?connect_timeout=soon", "connect_timeout='soon'"),
        ("mysql://u@h/db?autocommit=maybe", "not a boolean"),
        ("mysql://u@h/a/b", "bad database name"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AsyncConnectionPool(url)


def test_password_never_shown() -> None:
    secret = "s3cr3t-Pa55"
    url = f"mysql://app:{secret}@h:3306/db"
    pool = AsyncConnectionPool(url)
    assert secret not in repr(pool) and secret not in str(pool) and secret not in pool.name
    assert secret not in repr(pool._options)
    assert redact_url(url) == "mysql://app:***@h:3306/db"
    with pytest.raises(ValueError) as info:
        AsyncConnectionPool(f"mysql://app:{secret}@h:99999/db")
    assert secret not in str(info.value)
    with pytest.raises(ValueError) as info:
        AsyncConnectionPool(f"mysq://app:{secret}@h/db")
    assert secret not in str(info.value)


def test_name_defaults_to_the_address() -> None:
    assert AsyncConnectionPool("mysql://app:x@h:3306/db").name == "app@h:3306/db"
    assert AsyncConnectionPool("mysql://app@h/db", name="orders").name == "orders"
