"""`careroute serve` runs on uvloop where it is installed, and on asyncio's loop otherwise."""

from __future__ import annotations

import asyncio
import sys

from plugin.handlers.http import _fast_loop_factory


def test_serve_uses_uvloop_when_installed() -> None:
    import uvloop

    factory = _fast_loop_factory()
    assert factory is uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        assert isinstance(runner.get_loop(), uvloop.Loop)
        assert runner.run(asyncio.sleep(0, result="ran")) == "ran"


def test_serve_falls_back_to_asyncio_without_uvloop(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop → ImportError
    assert _fast_loop_factory() is None
