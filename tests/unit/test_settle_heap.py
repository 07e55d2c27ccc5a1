"""`careroute serve` settles its heap once started (handlers/http.py: settle_heap)."""

from __future__ import annotations

import gc

from plugin.handlers import http


def test_settling_freezes_what_is_loaded_and_collects_young_objects_less_often():
    threshold = gc.get_threshold()
    try:
        http.settle_heap()
        assert gc.get_freeze_count() > 0  # the screener, routes and modules loaded so far
        young, older, oldest = gc.get_threshold()
        assert young == http.GC_YOUNG_THRESHOLD > threshold[0]
        assert (older, oldest) == threshold[1:]
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


async def test_serve_settles_the_heap_after_start_up(monkeypatch):
    events: list[str] = []

    async def started(app, host, port, shutdown_timeout):
        events.append("started")

        class Runner:
            async def cleanup(self):
                events.append("cleaned up")
        return Runner(), None

    monkeypatch.setattr(http, "start_server", started)
    monkeypatch.setattr(http, "settle_heap", lambda: events.append("settled"))
    monkeypatch.setattr(http.asyncio.Event, "wait", _return_at_once)

    class Settings:
        host, port, shutdown_grace_seconds = "127.0.0.1", 0, 1.0

    await http._serve_until_signalled(object(), Settings())
    assert events == ["started", "settled", "cleaned up"]


async def _return_at_once(self) -> bool:
    return True
