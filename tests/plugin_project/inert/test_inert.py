"""A project that never asks for the aiopool fixtures: the plugin must change nothing."""

import sys

import pytest


def test_plugin_is_loaded_and_idle(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.has_plugin("aiopool")
    assert any(line.startswith("aiopool(") for line in pytestconfig.getini("markers"))
    # Nothing was looked for: no Docker SDK, no testcontainers, no admin thread.
    assert "docker" not in sys.modules
    assert "testcontainers" not in sys.modules


@pytest.mark.asyncio
async def test_async_tests_still_run() -> None:
    pass
