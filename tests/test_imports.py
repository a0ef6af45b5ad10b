"""Importing aiopool (and its pytest plugin, loaded in every session) stays light."""

from __future__ import annotations

import subprocess
import sys

import aiopool


def test_plugin_import_loads_neither_driver_nor_pool() -> None:
    code = (
        "import sys, aiopool, aiopool.testing.plugin\n"
        "heavy = [m for m in ('asyncmy', 'aiopool._pool', 'aiopool._cluster', 'docker',"
        " 'testcontainers') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "", f"imported eagerly: {out.stdout.strip()}"


def test_every_public_name_resolves() -> None:
    for name in aiopool.__all__:
        assert getattr(aiopool, name) is not None, name
    assert sorted(dir(aiopool)) == sorted(aiopool.__all__)


def test_unknown_name_is_an_attribute_error() -> None:
    try:
        aiopool.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("no AttributeError")
