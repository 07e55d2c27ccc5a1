"""The Zendesk sandbox's HTTP routes: `/api/v2/…` (vendor paths), `/oauth/tokens`,
`/oauth/authorizations/new` (the authorization-code consent step, answered at once), app
installations (`/api/v2/apps/installations`), `/_sandbox/…`.

Request and response shapes follow Zendesk's OpenAPI spec and the recorded responses in
reference/fixtures/zendesk; error bodies follow zendesk.md §2.7.
"""

from __future__ import annotations

import base64
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web

from .zendesk_hooks import ACTION_FIELDS, CONDITION_FIELDS, ulid

if TYPE_CHECKING:
    from .zendesk import SandboxTicket, ZendeskState

TICKET_KEYS = frozenset({
    "additional_collaborators", "assignee_email", "assignee_id", "attribute_value_ids",
    "collaborator_ids", "comment", "custom_fields", "custom_status_id", "due_at", "email_ccs",
    "external_id", "followers", "group_id", "organization_id", "priority", "problem_id",
    "requester_id", "safe_update", "sharing_agreement_ids", "status", "subject", "tags", "type",
    "updated_stamp", "macro_id", "macro_ids", "metadata"})
COMMENT_KEYS = frozenset({"body", "html_body", "public", "author_id", "uploads"})
PRIORITIES = ("low", "normal", "high", "urgent")
STATUSES = ("new", "open", "pending", "hold", "solved", "closed")
_TAG_CHARS = re.compile(r"[^\w:/.-]+")
# The authenticated user of a request (set by the sandbox's auth middleware).
ACTING_USER = web.RequestKey("zendesk_user", dict)
CONFLICT_DESCRIPTION = ("Safe Update prevented the update due to outdated ticket data. "
                        "Please fetch the latest ticket data and try again.")


def clean_tags(tags: Any) -> list[str]:
    if isinstance(tags, str):
        tags = tags.split()
    cleaned = [_TAG_CHARS.sub("_", str(t).strip().lower()) for t in tags or () if str(t).strip()]
    return list(dict.fromkeys(cleaned))


def error(status: int, code: str, description: str, **extra: Any) -> web.Response:
    return web.json_response({"error": code, "description": description, **extra}, status=status)


def not_found() -> web.Response:
    return error(404, "RecordNotFound", "Not found")


def invalid(field_name: str, description: str) -> web.Response:
    return error(422, "RecordInvalid", "Record validation errors",
                 details={field_name: [{"description": description}]})


def closed() -> web.Response:
    return invalid("status", "Status closed prevents ticket update")


def api_warn(unpermitted: list[str]) -> dict[str, str]:
    if not unpermitted:
        return {}
    keys = ", ".join(f'"{k}"' for k in unpermitted)
    return {"x-zendesk-api-warn": '{:allowed_parameters=>{:controller=>"tickets", :action=>"update", '
                                  f':unpermitted_keys=>[{keys}], :invalid_values=>[]}}}}'}


async def _json_body(request: web.Request) -> dict[str, Any] | None:
    try:
        data = await request.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _cursor_page(items: list[dict[str, Any]], request: web.Request, key: str) -> dict[str, Any]:
    size = max(1, min(100, _int(request.query.get("page[size]")) or 100))
    after = request.query.get("page[after]")
    start = int(base64.urlsafe_b64decode(after.encode()).decode()) if after else 0
    page = items[start:start + size]
    has_more = start + size < len(items)
    cursor = base64.urlsafe_b64encode(str(start + size).encode()).decode() if has_more else None
    next_url = (str(request.url.with_query({"page[size]": str(size), "page[after]": cursor}))
                if cursor else None)
    return {key: page, "meta": {"has_more": has_more, "after_cursor": cursor,
                                "before_cursor": None}, "links": {"prev": None, "next": next_url}}


def add_api_routes(app: web.Application, state: "ZendeskState") -> None:
    def ticket_or_none(request: web.Request) -> "SandboxTicket | None":
        return state.tickets.get(_int(request.match_info["ticket_id"]) or 0)

    # ------------------------------------------------------------ tickets

    async def create_ticket(request: web.Request) -> web.Response:
        data = await _json_body(request)
        ticket_in = data.get("ticket") if data else None
        if not isinstance(ticket_in, dict):
            return invalid("ticket", "Ticket: is missing")
        comment = ticket_in.get("comment") if isinstance(ticket_in.get("comment"), dict) else {}
        if not (comment.get("body") or comment.get("html_body")):
            return invalid("description", "Description: cannot be blank")
        actor = request[ACTING_USER]
        requester_id = _int(ticket_in.get("requester_id"))
        requester_in = ticket_in.get("requester")
        if isinstance(requester_in, dict) and requester_in.get("email"):
            found = state.user_by_email(requester_in["email"])
            requester_id = (found or state.create_user(
                name=requester_in.get("name") or requester_in["email"], email=requester_in["email"],
                locale=requester_in.get("locale") or "en-US",
                time_zone=requester_in.get("time_zone") or "UTC"))["id"]
        requester_id = requester_id or actor["id"]
        if requester_id not in state.users:
            return invalid("requester", "Requester: is invalid")
        priority = ticket_in.get("priority")
        if priority is not None and priority not in PRIORITIES:
            return invalid("priority", "Priority: is invalid")
        group_id = _int(ticket_in.get("group_id"))
        if group_id is not None and group_id not in state.groups:
            return invalid("group", "Group: is invalid")
        ticket = state.create_ticket(
            subject=str(ticket_in.get("subject") or ""), body=comment.get("body"),
            html_body=comment.get("html_body"), requester_id=requester_id,
            author_id=_int(comment.get("author_id")) or requester_id,
            tags=ticket_in.get("tags") or [], priority=priority, group_id=group_id,
            via=str(ticket_in.get("via_channel") or "api"), public=comment.get("public", True) is not False)
        return web.json_response({"ticket": ticket.as_json(), "audit": {"events": []}}, status=201,
                                 headers={"Location": f"/api/v2/tickets/{ticket.id}.json"})

    async def show_ticket(request: web.Request) -> web.Response:
        ticket = ticket_or_none(request)
        return web.json_response({"ticket": ticket.as_json()}) if ticket else not_found()

    async def update_ticket(request: web.Request) -> web.Response:
        ticket = ticket_or_none(request)
        data = await _json_body(request)
        ticket_in = data.get("ticket") if data else None
        if ticket is None:
            return not_found()
        if not isinstance(ticket_in, dict):
            return error(400, "InvalidValue", "Ticket: is missing")
        unpermitted = [f"ticket.{k}" for k in ticket_in if k not in TICKET_KEYS]
        comment_in = ticket_in.get("comment")
        if isinstance(comment_in, dict):
            unpermitted += [f"ticket.comment.{k}" for k in comment_in if k not in COMMENT_KEYS]
        warn = api_warn(unpermitted)
        if ticket.status == "closed":
            response = closed()
            response.headers.update(warn)
            return response
        if "safe_update" in ticket_in and ticket_in.get("updated_stamp") is not None:
            if ticket_in["updated_stamp"] != ticket.updated_at:
                return error(409, "UpdateConflict", CONFLICT_DESCRIPTION)
        if "priority" in ticket_in and ticket_in["priority"] not in (None, *PRIORITIES):
            return invalid("priority", "Priority: is invalid")
        if "status" in ticket_in and ticket_in["status"] not in STATUSES:
            return invalid("status", "Status: is invalid")
        group_id = _int(ticket_in.get("group_id"))
        if group_id is not None and group_id not in state.groups:
            return invalid("group", "Group: is invalid")
        actor = request[ACTING_USER]
        tags_before = list(ticket.tags)
        if "tags" in ticket_in:
            ticket.tags = clean_tags(ticket_in["tags"])
        for name in ("priority", "status", "type", "subject"):
            if name in ticket_in:
                setattr(ticket, name, ticket_in[name])
        if "group_id" in ticket_in:
            ticket.group_id = group_id
        if "assignee_id" in ticket_in:
            ticket.assignee_id = _int(ticket_in["assignee_id"])
        comment = None
        if isinstance(comment_in, dict):
            author_id = _int(comment_in.get("author_id")) or actor["id"]
            comment = state.add_comment(ticket, body=comment_in.get("body"),
                                        html_body=comment_in.get("html_body"), author_id=author_id,
                                        public=comment_in.get("public", True) is not False)
        audit = {"id": secrets.randbelow(10**13), "ticket_id": ticket.id, "author_id": actor["id"],
                 "created_at": ticket.updated_at, "metadata": {"custom": {}},
                 "events": [{"type": "Comment", "id": comment["id"]}] if comment else []}
        metadata = ticket_in.get("metadata")
        if isinstance(metadata, dict) and isinstance(metadata.get("custom"), dict):
            audit["metadata"]["custom"] = metadata["custom"]
        if ticket_in.get("macro_id") is not None:
            audit["events"].append({"type": "Change", "field_name": "macro_id",
                                    "value": str(ticket_in["macro_id"])})
        ticket.audits.append(audit)
        ticket.last_actor_id = comment["author_id"] if comment else actor["id"]
        ticket.touch()
        state._after_change(ticket, update_type="Change", actor_id=ticket.last_actor_id,
                            comment=comment, tags_before=tags_before, via="api")
        return web.json_response({"ticket": ticket.as_json(), "audit": audit}, headers=warn)

    async def list_comments(request: web.Request) -> web.Response:
        ticket = ticket_or_none(request)
        if ticket is None:
            return not_found()
        return web.json_response(_cursor_page(ticket.comments, request, "comments"))

    async def tags(request: web.Request) -> web.Response:
        ticket = ticket_or_none(request)
        if ticket is None:
            return not_found()
        if request.method == "GET":
            return web.json_response({"tags": list(ticket.tags)})
        if ticket.status == "closed":
            return closed()
        data = await _json_body(request) or {}
        if data.get("safe_update") is not None and data.get("updated_stamp") is not None:
            if data["updated_stamp"] != ticket.updated_at:
                return error(409, "UpdateConflict", CONFLICT_DESCRIPTION)
        before = list(ticket.tags)
        given = clean_tags(data.get("tags") or [])
        # POST sets (replaces), PUT adds — zendesk.md §2.2.
        ticket.tags = given if request.method == "POST" else list(dict.fromkeys(before + given))
        ticket.touch()
        state._after_change(ticket, update_type="Change", actor_id=request[ACTING_USER]["id"],
                            comment=None, tags_before=before, via="api")
        return web.json_response({"tags": list(ticket.tags)},
                                 status=201 if request.method == "POST" else 200)

    async def apply_macro(request: web.Request) -> web.Response:
        ticket = ticket_or_none(request)
        macro = state.macros.get(_int(request.match_info["macro_id"]) or 0)
        if ticket is None or macro is None:
            return not_found()
        after = ticket.as_json()
        comment: dict[str, Any] = {}
        tags = list(ticket.tags)
        for action in macro["actions"]:
            name, value = action.get("field"), action.get("value")
            value = " ".join(value) if isinstance(value, list) else value
            if name in ("status", "priority", "type"):
                after[name] = value
            elif name in ("group_id", "assignee_id"):
                after[name] = _int(value)
            elif name == "set_tags":
                tags = clean_tags(value)
            elif name == "current_tags":
                tags = list(dict.fromkeys(tags + clean_tags(value)))
            elif name == "remove_tags":
                tags = [t for t in tags if t not in set(clean_tags(value))]
            elif name == "comment_value_html":
                comment["html_body"] = value
            elif name == "comment_value":
                comment["body"] = value
            elif name == "comment_mode_is_public":
                comment["public"] = str(value).lower() == "true"
        after["tags"] = tags
        if comment:
            comment.setdefault("public", True)
            html_body = comment.get("html_body") or f"<p>{comment.get('body', '')}</p>"
            after["comment"] = {"body": comment.get("body") or re.sub(r"<[^>]+>", "", html_body),
                                "html_body": html_body, "public": comment["public"],
                                "scoped_body": [["channel:all", comment.get("body") or ""]]}
        return web.json_response({"result": {"ticket": after}})

    # ------------------------------------------------------------ users and groups

    async def create_user(request: web.Request) -> web.Response:
        data = await _json_body(request)
        user_in = data.get("user") if data else None
        if not isinstance(user_in, dict) or not user_in.get("name"):
            return invalid("name", "Name: is too short (minimum one character)")
        if user_in.get("email") and state.user_by_email(user_in["email"]):
            return error(422, "RecordInvalid", "Record validation errors", details={"email": [{
                "description": "Email is already being used by another user",
                "error": "DuplicateValue"}]})
        user = state.create_user(name=user_in["name"], email=user_in.get("email"),
                                 role=user_in.get("role") or "end-user",
                                 locale=user_in.get("locale") or "en-US",
                                 time_zone=user_in.get("time_zone") or "UTC")
        return web.json_response({"user": user}, status=201)

    async def show_user(request: web.Request) -> web.Response:
        user = state.users.get(_int(request.match_info["user_id"]) or 0)
        return web.json_response({"user": user}) if user else not_found()

    def collection(name: str, singular: str, store: dict[Any, dict[str, Any]],
                   validate: Any) -> None:
        async def list_all(request: web.Request) -> web.Response:
            return web.json_response({name: list(store.values()), "next_page": None,
                                      "previous_page": None, "count": len(store)})

        async def create(request: web.Request) -> web.Response:
            data = await _json_body(request)
            item = data.get(singular) if data else None
            if not isinstance(item, dict):
                return invalid(singular, f"{singular}: is missing")
            problem = validate(item)
            if problem:
                return invalid(*problem)
            item_id = next(state._other_ids)
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            record = {"active": True, "position": len(store) + 1, **item, "id": item_id,
                      "url": f"/api/v2/{name}/{item_id}.json", "created_at": now, "updated_at": now}
            store[item_id] = record
            return web.json_response({singular: record}, status=201,
                                     headers={"Location": record["url"]})

        async def show(request: web.Request) -> web.Response:
            item = store.get(_int(request.match_info["item_id"]) or 0)
            return web.json_response({singular: item}) if item else not_found()

        app.router.add_get(f"/api/v2/{name}", list_all)
        app.router.add_post(f"/api/v2/{name}", create)
        app.router.add_get(f"/api/v2/{name}/{{item_id:\\d+}}", show)

    def validate_group(item: dict[str, Any]) -> tuple[str, str] | None:
        return None if item.get("name") else ("name", "Name: cannot be blank")

    def validate_macro(item: dict[str, Any]) -> tuple[str, str] | None:
        if not item.get("title") or not isinstance(item.get("actions"), list) or not item["actions"]:
            return ("actions", "Actions: cannot be blank")
        return None

    def validate_trigger(item: dict[str, Any]) -> tuple[str, str] | None:
        conditions = item.get("conditions")
        if not item.get("title") or not isinstance(conditions, dict):
            return ("conditions", "Conditions: cannot be blank")
        for condition in (conditions.get("all") or []) + (conditions.get("any") or []):
            if condition.get("field") not in CONDITION_FIELDS:
                return ("conditions", "Conditions: unknown field")
        actions = item.get("actions")
        if not isinstance(actions, list) or not actions:
            return ("actions", "Actions: cannot be blank")
        for action in actions:
            if action.get("field") not in ACTION_FIELDS:
                return ("actions", "Actions: unknown field")
            if action["field"] == "notification_webhook":
                value = action.get("value")
                if not (isinstance(value, list) and len(value) == 2 and value[0] in state.webhooks):
                    return ("actions", "Actions: webhook is invalid")
        return None

    collection("groups", "group", state.groups, validate_group)
    collection("macros", "macro", state.macros, validate_macro)
    collection("triggers", "trigger", state.triggers, validate_trigger)

    # ------------------------------------------------------------ webhooks

    async def list_webhooks(request: web.Request) -> web.Response:
        needle = request.query.get("filter[name_contains]", "").lower()
        items = [w for w in state.webhooks.values() if needle in w["name"].lower()]
        return web.json_response({"webhooks": items, "meta": {"has_more": False,
                                  "after_cursor": None, "before_cursor": None},
                                  "links": {"next": None, "prev": None}})

    async def create_webhook(request: web.Request) -> web.Response:
        data = await _json_body(request)
        hook = data.get("webhook") if data else None
        required = ("name", "status", "endpoint", "http_method", "request_format")
        if not isinstance(hook, dict) or any(not hook.get(k) for k in required):
            return web.json_response({"errors": [{"code": "InvalidInput", "title": "Invalid input",
                                                  "detail": "missing required field"}]}, status=400)
        subscriptions = hook.get("subscriptions") or []
        webhook_id = ulid()
        record = {"id": webhook_id, "name": hook["name"], "description": hook.get("description"),
                  "status": hook["status"], "subscriptions": subscriptions,
                  "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "created_by": str(request[ACTING_USER]["id"]), "endpoint": hook["endpoint"],
                  "http_method": hook["http_method"], "request_format": hook["request_format"]}
        state.webhooks[webhook_id] = record
        state.webhook_secrets[webhook_id] = secrets.token_urlsafe(32)
        return web.json_response({"webhook": record}, status=201)

    async def show_webhook(request: web.Request) -> web.Response:
        hook = state.webhooks.get(request.match_info["webhook_id"])
        return web.json_response({"webhook": hook}) if hook else not_found()

    async def signing_secret(request: web.Request) -> web.Response:
        webhook_id = request.match_info["webhook_id"]
        if webhook_id not in state.webhooks:
            return not_found()
        if request.method == "POST":  # reset
            state.webhook_secrets[webhook_id] = secrets.token_urlsafe(32)
        return web.json_response({"signing_secret": {"secret": state.webhook_secrets[webhook_id],
                                                     "algorithm": "SHA256"}},
                                 status=201 if request.method == "POST" else 200)

    # ------------------------------------------------------------ OAuth

    async def oauth_tokens(request: web.Request) -> web.Response:
        if request.content_type == "application/json":
            data = await _json_body(request) or {}
        else:
            data = dict(await request.post())
        state.token_grants.append(str(data.get("grant_type")))
        if data.get("client_id") != "sandbox-client" or data.get("client_secret") != "sandbox-secret":
            return web.json_response({"error": "invalid_client", "error_description":
                                      "Client authentication failed."}, status=401)
        grant = data.get("grant_type")
        if grant == "refresh_token":
            expires = state.refresh_tokens.pop(str(data.get("refresh_token")), None)
            if expires is None or expires <= time.time():
                return web.json_response({"error": "invalid_grant", "error_description":
                                          "The provided refresh token is invalid."}, status=400)
        elif grant == "authorization_code":
            if data.get("code") not in state.auth_codes:
                return web.json_response({"error": "invalid_grant", "error_description":
                                          "The provided authorization grant is invalid."}, status=400)
            state.auth_codes.discard(data["code"])
        elif grant != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        return web.json_response(state.issue_tokens())

    # ------------------------------------------------------------ test-only helpers

    async def sandbox_tickets(_: web.Request) -> web.Response:
        return web.json_response([{**t.as_json(), "comments": t.comments, "audits": t.audits}
                                  for t in state.tickets.values()])

    async def sandbox_close(request: web.Request) -> web.Response:
        ticket = ticket_or_none(request)
        if ticket is None:
            return not_found()
        ticket.status = "closed"
        ticket.touch()
        return web.json_response({"ticket": ticket.as_json()})

    async def sandbox_requester_comment(request: web.Request) -> web.Response:
        ticket = ticket_or_none(request)
        data = await _json_body(request) or {}
        if ticket is None:
            return not_found()
        if not isinstance(data.get("body"), str) or not data["body"]:
            return invalid("body", "Body: cannot be blank")
        return web.json_response({"comment": state.requester_comment(ticket, data["body"])},
                                 status=201)

    async def sandbox_deliveries(_: web.Request) -> web.Response:
        return web.json_response(state.sender.attempts)

    router = app.router
    router.add_post("/api/v2/tickets", create_ticket)
    router.add_get(r"/api/v2/tickets/{ticket_id:\d+}", show_ticket)
    router.add_put(r"/api/v2/tickets/{ticket_id:\d+}", update_ticket)
    router.add_get(r"/api/v2/tickets/{ticket_id:\d+}/comments", list_comments)
    for method in ("GET", "PUT", "POST"):
        router.add_route(method, r"/api/v2/tickets/{ticket_id:\d+}/tags", tags)
    router.add_get(r"/api/v2/tickets/{ticket_id:\d+}/macros/{macro_id:\d+}/apply", apply_macro)
    router.add_post("/api/v2/users", create_user)
    router.add_get(r"/api/v2/users/{user_id:\d+}", show_user)
    router.add_get("/api/v2/webhooks", list_webhooks)
    router.add_post("/api/v2/webhooks", create_webhook)
    router.add_get("/api/v2/webhooks/{webhook_id}", show_webhook)
    router.add_get("/api/v2/webhooks/{webhook_id}/signing_secret", signing_secret)
    router.add_post("/api/v2/webhooks/{webhook_id}/signing_secret", signing_secret)
    router.add_post("/oauth/tokens", oauth_tokens)
    router.add_get("/_sandbox/tickets", sandbox_tickets)
    router.add_post(r"/_sandbox/tickets/{ticket_id:\d+}/close", sandbox_close)
    router.add_post(r"/_sandbox/tickets/{ticket_id:\d+}/requester_comment",
                    sandbox_requester_comment)
    router.add_get("/_sandbox/deliveries", sandbox_deliveries)
    add_oauth_and_app_routes(app, state)
    add_group_membership_routes(app, state)


# ------------------------------------------------------------------ OAuth consent and app settings

OAUTH_CLIENT = "sandbox-client"
# Secure app settings are never returned by the installations API (zendesk.md §5.2).
SECURE_SETTING_NAMES = frozenset({"tenant_token"})


@dataclass
class SandboxApps:
    """What an admin did in the sandbox's Admin Center: consent answers and app installations."""

    approve: bool = True  # the answer the next consent screens give
    authorizations: list[dict[str, str]] = field(default_factory=list)
    installations: dict[int, dict[str, Any]] = field(default_factory=dict)


SANDBOX_APPS = web.AppKey("zendesk_sandbox_apps", SandboxApps)


def add_oauth_and_app_routes(app: web.Application, state: "ZendeskState") -> None:
    apps = SandboxApps()
    app[SANDBOX_APPS] = apps
    installation_ids = iter(range(360_001_000_001, 360_002_000_000))

    async def authorize(request: web.Request) -> web.StreamResponse:
        """The consent screen, answered at once: 302 back to redirect_uri with a code (or an
        `access_denied` error when the sandbox was told to refuse)."""
        query = request.query
        redirect_uri = query.get("redirect_uri", "")
        if query.get("response_type") != "code" or query.get("client_id") != OAUTH_CLIENT \
                or not redirect_uri.startswith(("http://", "https://")):
            return web.Response(status=400, text="Invalid authorization request.")
        apps.authorizations.append({k: query.get(k, "") for k in
                                    ("client_id", "redirect_uri", "scope", "state")})
        if apps.approve:
            answer = {"code": state.issue_code(), "state": query.get("state", "")}
        else:
            answer = {"error": "access_denied", "error_description": "The end-user or "
                      "authorization server denied the request.", "state": query.get("state", "")}
        separator = "&" if "?" in redirect_uri else "?"
        raise web.HTTPFound(redirect_uri + separator + urlencode(answer))

    async def consent(request: web.Request) -> web.Response:
        body = await _json_body(request) or {}
        apps.approve = bool(body.get("approve", True))
        return web.json_response({"approve": apps.approve})

    def public(installation: dict[str, Any]) -> dict[str, Any]:
        settings = {k: v for k, v in installation["settings"].items()
                    if k not in SECURE_SETTING_NAMES}
        return {**installation, "settings": settings,
                "settings_objects": [{"name": k, "value": v} for k, v in settings.items()]}

    async def list_installations(_: web.Request) -> web.Response:
        return web.json_response({"installations": [public(i) for i in
                                                    apps.installations.values()]})

    async def create_installation(request: web.Request) -> web.Response:
        body = await _json_body(request) or {}
        settings = body.get("settings")
        app_id = _int(body.get("app_id"))
        if app_id is None or not isinstance(settings, dict) or not settings.get("name"):
            return invalid("settings", "app_id and settings.name are required")
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        installation = {"id": next(installation_ids), "app_id": app_id, "product": "support",
                        "settings": dict(settings), "enabled": bool(body.get("enabled", True)),
                        "created_at": stamp, "updated_at": stamp}
        apps.installations[installation["id"]] = installation
        return web.json_response(public(installation), status=201)

    async def update_installation(request: web.Request) -> web.Response:
        installation = apps.installations.get(int(request.match_info["installation_id"]))
        if installation is None:
            return not_found()
        body = await _json_body(request) or {}
        if isinstance(body.get("settings"), dict):
            installation["settings"].update(body["settings"])
        if "enabled" in body:
            installation["enabled"] = bool(body["enabled"])
        installation["updated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return web.json_response(public(installation))

    router = app.router
    router.add_get("/oauth/authorizations/new", authorize)
    router.add_post("/_sandbox/oauth/consent", consent)
    for path in ("/api/v2/apps/installations", "/api/v2/apps/installations.json"):
        router.add_get(path, list_installations)
        router.add_post(path, create_installation)
    router.add_put(r"/api/v2/apps/installations/{installation_id:\d+}", update_installation)
    router.add_put(r"/api/v2/apps/installations/{installation_id:\d+}.json", update_installation)


# ------------------------------------------------------------------ group memberships (wellbeing rota)

# The trained group starts with three agents, created on first use so other tests' ids stay put.
TRAINED_AGENT_NAMES = ("Trained Agent Ana", "Trained Agent Ben", "Trained Agent Chloe")
GROUP_MEMBERS = web.AppKey("zendesk_sandbox_group_members", dict)


def add_group_membership_routes(app: web.Application, state: "ZendeskState") -> None:
    """GET /api/v2/groups/{id}/memberships (Zendesk's shape, one page) and
    PUT /_sandbox/groups/{id}/memberships {"user_ids": [...]} to arrange a group."""
    from .zendesk import TRAINED_GROUP_ID

    members: dict[int, list[int]] = {}
    app[GROUP_MEMBERS] = members

    def members_of(group_id: int) -> list[int]:
        if group_id == TRAINED_GROUP_ID and group_id not in members:
            members[group_id] = [
                state.create_user(name=name, email=f"{name.split()[-1].lower()}@agents.sandbox.test",
                                  role="agent")["id"] for name in TRAINED_AGENT_NAMES]
        return members.setdefault(group_id, [])

    async def list_memberships(request: web.Request) -> web.Response:
        group_id = _int(request.match_info["group_id"]) or 0
        if group_id not in state.groups:
            return not_found()
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        items = [{"id": group_id * 100 + index, "user_id": user_id, "group_id": group_id,
                  "default": index == 0, "url": f"/api/v2/group_memberships/{group_id * 100 + index}.json",
                  "created_at": now, "updated_at": now}
                 for index, user_id in enumerate(members_of(group_id))]
        return web.json_response({"group_memberships": items, "next_page": None,
                                  "previous_page": None, "count": len(items)})

    async def set_memberships(request: web.Request) -> web.Response:
        group_id = _int(request.match_info["group_id"]) or 0
        data = await _json_body(request) or {}
        user_ids = data.get("user_ids")
        if group_id not in state.groups or not isinstance(user_ids, list):
            return not_found()
        if any(_int(u) not in state.users for u in user_ids):
            return invalid("user_ids", "User: not found")
        members[group_id] = [int(u) for u in user_ids]
        return web.json_response({"user_ids": members[group_id]})

    app.router.add_get(r"/api/v2/groups/{group_id:\d+}/memberships", list_memberships)
    app.router.add_get(r"/api/v2/groups/{group_id:\d+}/memberships.json", list_memberships)
    app.router.add_put(r"/_sandbox/groups/{group_id:\d+}/memberships", set_memberships)
