"""A local Freshdesk (API v2 paths) for the demo, the tests and the benchmarks.

What CareRoute touches, with Freshdesk's semantics: tickets (PUT replaces the tag array; integer
priorities 1–4 and statuses 2–7; `description` HTML + `description_text`), notes, replies,
paginated conversations, contacts (`language`, `time_zone`), groups, canned responses and folders
and automation rules (admin only: an agent key gets 403), outbound webhooks fired by rules
(Basic auth / custom header / URL token; the body rendered from placeholders the way Freshdesk
does it: newlines escaped, quotes not, so a quote in a value breaks the JSON; retries at
+5/+30/+60 "minutes" compressed to `retry_delays` seconds), a per-minute rate limit with the real
headers and 429 + Retry-After, the documented error bodies, faults and a request log.

Keys: admin `sandbox-key`, agent `sandbox-agent-key` (Basic auth, key as user, any password).
Customer replies have no API in Freshdesk; `POST /_sandbox/freshdesk/tickets/{id}/customer_reply`
stands in for an e-mail from the requester. `GET /_sandbox/freshdesk/webhooks` lists deliveries.
The account itself (records, rules, webhooks) is in freshdesk_state.py; this module is its HTTP face.
"""

from __future__ import annotations

import base64
from dataclasses import asdict
from typing import Any

from aiohttp import web

from plugin.sandbox.common import Faults, RequestLog, add_control_routes, fault_middleware
from plugin.sandbox.freshdesk_state import (
    ADMIN_KEY,
    AGENT_KEY,
    PERFORMER_AGENT,
    PERFORMER_CUSTOMER,
    ApiError,
    Delivery,
    FreshdeskState,
    html_to_text,
    invalid,
    now_stamp,
    reject_unknown,
    render_placeholders,
)

__all__ = ["ADMIN_KEY", "AGENT_KEY", "FRESHDESK_STATE", "Delivery", "FreshdeskState",
           "create_app", "render_placeholders"]

FRESHDESK_STATE = web.AppKey("freshdesk_state", FreshdeskState)
AGENT = web.RequestKey("freshdesk_agent", int)


# --------------------------------------------------------------------------- HTTP


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status,
                             content_type="application/json")


def _credits(request: web.Request) -> int:
    includes = [i for i in request.query.get("include", "").split(",") if i]
    return 1 + sum(2 if i == "conversations" else 1 for i in includes)


def _agent_for(state: FreshdeskState, request: web.Request) -> int | None:
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        key = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")[0]
    except (ValueError, UnicodeDecodeError):
        return None
    return state.keys.get(key)


def _api_middleware(state: FreshdeskState) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        if not request.path.startswith("/api/"):
            return await handler(request)
        credits = _credits(request)
        rate = {"X-Ratelimit-Total": str(state.rate.limit),
                "X-Freshdesk-Api-Version": "latest=v2; requested=v2"}
        if not state.rate.take(credits):  # invalid requests count too: checked before auth
            rate.update({"X-Ratelimit-Remaining": "0", "X-Ratelimit-Used-CurrentRequest": "0",
                         "Retry-After": str(state.rate.retry_after())})
            return web.json_response({"code": "rate_limit_exceeded",
                                      "message": "You have exceeded the limit of requests per "
                                                 "minute"}, status=429, headers=rate)
        rate.update({"X-Ratelimit-Remaining": str(state.rate.remaining),
                     "X-Ratelimit-Used-CurrentRequest": str(credits)})
        agent = _agent_for(state, request)
        try:
            if agent is None:
                raise ApiError(401, {"code": "invalid_credentials",
                                     "message": "You have to be logged in to perform this action."})
            request[AGENT] = agent
            response = await handler(request)
        except ApiError as error:
            response = (_json(error.body, error.status) if error.body is not None
                        else web.Response(status=error.status))
        response.headers.update(rate)
        return response
    return middleware


def _admin(request: web.Request) -> None:
    if request[AGENT] not in request.app[FRESHDESK_STATE].admins:
        raise ApiError(403, {"code": "access_denied",
                             "message": "You are not authorized to perform this action."})


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError:
        raise ApiError(400, {"description": "Validation failed", "errors": [
            {"field": None, "message": "Request body has invalid json format",
             "code": "invalid_json"}]}) from None
    if not isinstance(data, dict):
        raise ApiError(400, {"description": "Validation failed", "errors": [
            {"field": None, "message": "Request body has invalid json format",
             "code": "invalid_json"}]})
    return data


def _ticket(request: web.Request) -> dict[str, Any]:
    state = request.app[FRESHDESK_STATE]
    try:
        ticket = state.tickets[int(request.match_info["id"])]
    except (KeyError, ValueError):
        raise ApiError(404) from None
    return ticket


def _page(request: web.Request, items: list[Any]) -> web.Response:
    try:
        page = int(request.query.get("page", "1"))
        per_page = int(request.query.get("per_page", "30"))
    except ValueError:
        raise invalid("page", "It should be a/an Positive Integer", "datatype_mismatch") from None
    if per_page > 100 or per_page < 1 or page < 1:
        raise invalid("per_page", "It should be a Positive Number less than or equal to 100")
    chunk = items[(page - 1) * per_page: page * per_page]
    response = _json(chunk)
    if page * per_page < len(items):
        url = request.url.update_query(page=page + 1, per_page=per_page)
        response.headers["Link"] = f'<{url}>; rel="next"'
    return response


async def create_ticket(request: web.Request) -> web.Response:
    state = request.app[FRESHDESK_STATE]
    return _json(state.create_ticket(await _body(request)), 201)


async def list_tickets(request: web.Request) -> web.Response:
    state = request.app[FRESHDESK_STATE]
    live = [t for t in state.tickets.values() if not t["deleted"]]
    return _page(request, sorted(live, key=lambda t: t["id"], reverse=True))


async def show_ticket(request: web.Request) -> web.Response:
    ticket = dict(_ticket(request))
    state = request.app[FRESHDESK_STATE]
    includes = request.query.get("include", "").split(",")
    if "requester" in includes:
        contact = state.contacts.get(ticket["requester_id"], {})
        ticket["requester"] = {k: contact.get(k) for k in ("id", "name", "email", "mobile", "phone")}
    if "conversations" in includes:
        ticket["conversations"] = state.conversations[ticket["id"]][:10]
    return _json(ticket)


async def update_ticket(request: web.Request) -> web.Response:
    state = request.app[FRESHDESK_STATE]
    ticket = _ticket(request)
    if ticket["deleted"]:
        raise ApiError(404)
    state.update_ticket(ticket, await _body(request), request[AGENT])
    answer = dict(ticket)
    if state.on_ticket_put is not None:
        state.on_ticket_put(ticket)
    return _json(answer)


async def delete_ticket(request: web.Request) -> web.Response:
    _ticket(request)["deleted"] = True
    return web.Response(status=204)


async def list_conversations(request: web.Request) -> web.Response:
    ticket = _ticket(request)
    return _page(request, request.app[FRESHDESK_STATE].conversations[ticket["id"]])


async def _post_conversation(request: web.Request, *, private_default: bool,
                             reply: bool) -> web.Response:
    state = request.app[FRESHDESK_STATE]
    ticket = _ticket(request)
    data = await _body(request)
    reject_unknown(data, {"body", "private", "incoming", "notify_emails", "user_id",
                           "cc_emails", "bcc_emails"})
    if not isinstance(data.get("body"), str) or not data["body"].strip():
        raise invalid("body", "It should not be blank as this is a mandatory field",
                       "missing_field")
    private = False if reply else bool(data.get("private", private_default))
    conversation = state.add_conversation(ticket, data["body"], private=private,
                                          incoming=bool(data.get("incoming", False)),
                                          user_id=request[AGENT])
    state.fire(4, ticket, performer=PERFORMER_AGENT,
               changed={"reply_sent"} if reply else {"note_type"})
    return _json(conversation, 201)


async def create_note(request: web.Request) -> web.Response:
    return await _post_conversation(request, private_default=True, reply=False)


async def create_reply(request: web.Request) -> web.Response:
    return await _post_conversation(request, private_default=False, reply=True)


async def create_contact(request: web.Request) -> web.Response:
    return _json(request.app[FRESHDESK_STATE].add_contact(await _body(request)), 201)


async def show_contact(request: web.Request) -> web.Response:
    try:
        return _json(request.app[FRESHDESK_STATE].contacts[int(request.match_info["id"])])
    except (KeyError, ValueError):
        raise ApiError(404) from None


async def list_groups(request: web.Request) -> web.Response:
    return _page(request, list(request.app[FRESHDESK_STATE].groups.values()))


async def show_group(request: web.Request) -> web.Response:
    try:
        return _json(request.app[FRESHDESK_STATE].groups[int(request.match_info["id"])])
    except (KeyError, ValueError):
        raise ApiError(404) from None


def _stamp(record: dict[str, Any]) -> dict[str, Any]:
    now = now_stamp()
    record.setdefault("created_at", now)
    record["updated_at"] = now
    return record


async def list_folders(request: web.Request) -> web.Response:
    _admin(request)
    state = request.app[FRESHDESK_STATE]
    return _json([{**f, "responses_count": sum(1 for c in state.canned.values()
                                               if c["folder_id"] == f["id"])}
                  for f in state.folders.values()])


async def show_folder(request: web.Request, *, full: bool = False) -> web.Response:
    _admin(request)
    state = request.app[FRESHDESK_STATE]
    try:
        folder = state.folders[int(request.match_info["id"])]
    except (KeyError, ValueError):
        raise ApiError(404) from None
    responses = [c for c in state.canned.values() if c["folder_id"] == folder["id"]]
    if full:
        return _json(responses)
    return _json({**folder, "canned_responses": [{"id": c["id"], "title": c["title"]}
                                                 for c in responses]})


async def folder_responses(request: web.Request) -> web.Response:
    return await show_folder(request, full=True)


async def create_folder(request: web.Request) -> web.Response:
    _admin(request)
    state = request.app[FRESHDESK_STATE]
    data = await _body(request)
    if not isinstance(data.get("name"), str) or not data["name"].strip():
        raise invalid("name", "Mandatory attribute missing", "missing_field")
    if any(f["name"] == data["name"] for f in state.folders.values()):
        raise invalid("name", "It should be a unique value", "duplicate_value")
    folder = _stamp({"id": state.next_id(), "name": data["name"], "personal": False})
    state.folders[folder["id"]] = folder
    return _json(folder, 201)


async def show_canned(request: web.Request) -> web.Response:
    _admin(request)
    try:
        return _json(request.app[FRESHDESK_STATE].canned[int(request.match_info["id"])])
    except (KeyError, ValueError):
        raise ApiError(404) from None


async def save_canned(request: web.Request) -> web.Response:
    _admin(request)
    state = request.app[FRESHDESK_STATE]
    data = await _body(request)
    reject_unknown(data, {"title", "content_html", "folder_id", "visibility", "group_ids"})
    existing = None
    if "id" in request.match_info:
        existing = state.canned.get(int(request.match_info["id"]))
        if existing is None:
            raise ApiError(404)
    merged = {**(existing or {}), **data}
    for name in ("title", "content_html"):
        if not isinstance(merged.get(name), str) or not merged[name].strip():
            raise invalid(name, "Mandatory attribute missing", "missing_field")
    if merged.get("folder_id") not in state.folders:
        raise invalid("folder_id", "There is no folder matching the given folder_id")
    record = _stamp({**merged, "id": existing["id"] if existing else state.next_id(),
                     "content": html_to_text(merged["content_html"]), "attachments": []})
    state.canned[record["id"]] = record
    return _json(record, 200 if existing else 201)


def _rule_type(request: web.Request) -> dict[int, dict[str, Any]]:
    _admin(request)
    try:
        return request.app[FRESHDESK_STATE].rules[int(request.match_info["type"])]
    except (KeyError, ValueError):
        raise ApiError(404) from None


async def list_rules(request: web.Request) -> web.Response:
    return _page(request, list(_rule_type(request).values()))


async def save_rule(request: web.Request) -> web.Response:
    rules = _rule_type(request)
    data = await _body(request)
    existing = None
    if "id" in request.match_info:
        existing = rules.get(int(request.match_info["id"]))
        if existing is None:
            raise ApiError(404)
    merged = {**(existing or {}), **data}
    if not isinstance(merged.get("name"), str) or not merged["name"].strip():
        raise invalid("name", "Mandatory attribute missing", "missing_field")
    if not merged.get("actions"):
        raise invalid("actions", "Mandatory attribute missing", "missing_field")
    for action in merged["actions"]:
        if action.get("field_name") == "trigger_webhook" and not str(
                action.get("url", "")).startswith(("http://", "https://")):
            raise invalid("url", "It should be in the 'valid URL' format")
    record = _stamp({**merged, "id": existing["id"] if existing else
                     request.app[FRESHDESK_STATE].next_id(),
                     "automation_type_id": int(request.match_info["type"])})
    record.setdefault("active", True)
    rules[record["id"]] = record
    return _json(record, 200 if existing else 201)


async def show_rule(request: web.Request) -> web.Response:
    try:
        return _json(_rule_type(request)[int(request.match_info["id"])])
    except (KeyError, ValueError):
        raise ApiError(404) from None


async def delete_rule(request: web.Request) -> web.Response:
    rules = _rule_type(request)
    if rules.pop(int(request.match_info["id"]), None) is None:
        raise ApiError(404)
    return web.Response(status=204)


async def customer_reply(request: web.Request) -> web.Response:
    """Control route: the requester answers by e-mail (Freshdesk has no API for it)."""
    state = request.app[FRESHDESK_STATE]
    try:
        ticket = _ticket(request)
        data = await _body(request)
    except ApiError as error:
        return _json(error.body or {}, error.status)
    conversation = state.add_conversation(ticket, str(data.get("body", "")), private=False,
                                          incoming=True, user_id=ticket["requester_id"])
    state.fire(4, ticket, performer=PERFORMER_CUSTOMER, changed={"reply_sent"})
    return _json(conversation, 201)


async def list_deliveries(request: web.Request) -> web.Response:
    return _json([asdict(d) for d in request.app[FRESHDESK_STATE].deliveries])


# The trained group's agents (for the wellbeing rota): a group lists its members in `agent_ids`.
TRAINED_AGENTS = {3: "Trained Agent Ana", 4: "Trained Agent Ben", 5: "Trained Agent Chloe"}


def _seed_trained_agents(state: FreshdeskState) -> None:
    state.agents.update(TRAINED_AGENTS)
    state.groups[1]["agent_ids"] = [1, 2]
    state.groups[2]["agent_ids"] = list(TRAINED_AGENTS)


def create_app(*, webhook_target: str | None = None, webhook_secret: str | None = None,
               faults: Faults | None = None, rate_per_minute: int = 400) -> web.Application:
    faults = faults or Faults()
    log = RequestLog()
    state = FreshdeskState(rate_per_minute=rate_per_minute, webhook_target=webhook_target,
                           webhook_secret=webhook_secret, faults=faults, log=log)
    _seed_trained_agents(state)
    app = web.Application(middlewares=[fault_middleware(faults, log), _api_middleware(state)])
    app[FRESHDESK_STATE] = state

    async def open_outbound(_: web.Application) -> None:
        await state.open()

    async def close_outbound(_: web.Application) -> None:
        await state.close()

    app.on_startup.append(open_outbound)
    app.on_cleanup.append(close_outbound)
    add_control_routes(app, faults, log)
    v2 = "/api/v2"
    app.router.add_post(f"{v2}/tickets", create_ticket)
    app.router.add_get(f"{v2}/tickets", list_tickets)
    app.router.add_get(f"{v2}/tickets/{{id}}", show_ticket)
    app.router.add_put(f"{v2}/tickets/{{id}}", update_ticket)
    app.router.add_delete(f"{v2}/tickets/{{id}}", delete_ticket)
    app.router.add_get(f"{v2}/tickets/{{id}}/conversations", list_conversations)
    app.router.add_post(f"{v2}/tickets/{{id}}/notes", create_note)
    app.router.add_post(f"{v2}/tickets/{{id}}/reply", create_reply)
    app.router.add_post(f"{v2}/contacts", create_contact)
    app.router.add_get(f"{v2}/contacts/{{id}}", show_contact)
    app.router.add_get(f"{v2}/groups", list_groups)
    app.router.add_get(f"{v2}/groups/{{id}}", show_group)
    app.router.add_get(f"{v2}/canned_response_folders", list_folders)
    app.router.add_get(f"{v2}/canned_response_folders/{{id}}", show_folder)
    app.router.add_get(f"{v2}/canned_response_folders/{{id}}/responses", folder_responses)
    app.router.add_post(f"{v2}/canned_response_folder", create_folder)  # as documented
    app.router.add_post(f"{v2}/canned_response_folders", create_folder)
    app.router.add_get(f"{v2}/canned_responses/{{id}}", show_canned)
    app.router.add_post(f"{v2}/canned_responses", save_canned)
    app.router.add_put(f"{v2}/canned_responses/{{id}}", save_canned)
    app.router.add_get(f"{v2}/automations/{{type}}/rules", list_rules)
    app.router.add_post(f"{v2}/automations/{{type}}/rules", save_rule)
    app.router.add_get(f"{v2}/automations/{{type}}/rules/{{id}}", show_rule)
    app.router.add_put(f"{v2}/automations/{{type}}/rules/{{id}}", save_rule)
    app.router.add_delete(f"{v2}/automations/{{type}}/rules/{{id}}", delete_rule)
    app.router.add_post("/_sandbox/freshdesk/tickets/{id}/customer_reply", customer_reply)
    app.router.add_get("/_sandbox/freshdesk/webhooks", list_deliveries)
    return app
