"""`careroute sandbox`: both emulators on their own ports until interrupted."""

from __future__ import annotations

import asyncio
import signal

from aiohttp import web

from . import freshdesk, zendesk

# With --webhook-target, the emulators deliver to these tenants of the service.
ZENDESK_TENANT = "zendesk-sandbox"
FRESHDESK_TENANT = "freshdesk-sandbox"
SANDBOX_WEBHOOK_SECRET = "sandbox-webhook-secret"


async def start_site(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


async def run_sandboxes(*, host: str, zendesk_port: int, freshdesk_port: int,
                        webhook_target: str | None, stop: asyncio.Event | None = None) -> None:
    target = webhook_target.rstrip("/") if webhook_target else None
    zd_app = zendesk.create_app(
        webhook_target=f"{target}/webhooks/zendesk/{ZENDESK_TENANT}" if target else None,
        webhook_secret=SANDBOX_WEBHOOK_SECRET if target else None)
    fd_app = freshdesk.create_app(
        webhook_target=f"{target}/webhooks/freshdesk/{FRESHDESK_TENANT}" if target else None,
        webhook_secret=SANDBOX_WEBHOOK_SECRET if target else None)
    runners = [await start_site(zd_app, host, zendesk_port),
               await start_site(fd_app, host, freshdesk_port)]
    print(f"Zendesk sandbox   http://{host}:{zendesk_port}   API token: "
          f"agent@sandbox.test/token:{zendesk.SANDBOX_TOKEN}   OAuth client: "
          f"{zendesk.OAUTH_CLIENT_ID} / {zendesk.OAUTH_CLIENT_SECRET}")
    print(f"Freshdesk sandbox http://{host}:{freshdesk_port}   API key: {freshdesk.ADMIN_KEY} "
          f"(agent key: {freshdesk.AGENT_KEY})")
    if target:
        print(f"Webhooks go to {target}/webhooks/{{zendesk,freshdesk}}/…  tenants "
              f"{ZENDESK_TENANT!r} / {FRESHDESK_TENANT!r}, secret {SANDBOX_WEBHOOK_SECRET!r}")
    print("Fault knobs: PUT /_sandbox/faults · request log: GET /_sandbox/requests · Ctrl-C stops.",
          flush=True)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    try:
        await stop.wait()
    finally:
        for runner in runners:
            await runner.cleanup()
