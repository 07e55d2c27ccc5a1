"""The admin page at /admin: per-tenant thresholds and actions, a live preview, and how it fires.

    setup_admin(app, service, *, registry=None, auth=None) -> None

Sign-in: the tenant id and its admin token (TenantConfig.admin_token), compared in constant time.
The session is an HttpOnly, SameSite=Strict cookie signed with a key made when the process starts
(a restart signs everyone out) and bound to the token, so rotating the token ends old sessions.
Every POST carries a CSRF token derived from the session (HMAC) and must come from this origin
when the browser says where it comes from.

Changes go through `TenantRegistry.update(tenant_id, changes, actor=…)`: validated by the same
TenantConfig model as the tenants file, recorded (key names only) and put into the service's
TenantDirectory, so the next ticket uses them. The preview screens the pasted text in memory and
answers; it never stores or logs the text (the access log names the route only).

Pages are filled from admin_assets/*.html; every value is HTML-escaped here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import secrets
import string
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources as package_files
from typing import Any, Callable, Mapping

from aiohttp import web

from ..config import TenantConfig
from ..errors import CareRouteError, ConfigError
from ..feedback_report import FeedbackReport, load_activity, load_report
from ..logging import get_logger
from ..model import ACTION_TIERS, PRIORITIES, Ticket
from ..policy import plan, tier_for_tenant
from ..resources.render import MASKED_CATEGORY_KEYS, category_key
from ..sandbox.agent_view import sanitise_note
from ..screening import screen
from ..service import Service
from .guard import guarded

log = get_logger("careroute.admin")

COOKIE = "careroute_admin"
LOGIN_COOKIE = "careroute_admin_login"
SESSION_SECONDS = 8 * 3600
MAX_PREVIEW_CHARS = 20_000
LOGIN_FAILURES_PER_MINUTE = 5
WEEK = 7 * 86400
ASSETS = {"admin.css": "text/css", "admin.js": "text/javascript"}
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin", "X-Frame-Options": "DENY",
}


class FormError(CareRouteError):
    """A form value we cannot read; the message names the field, never echoes the value."""


# ------------------------------------------------------------------ sessions and CSRF


@dataclass(frozen=True)
class Session:
    tenant_id: str
    sid: str


class AdminAuth:
    """Signed session cookies, CSRF tokens and a brake on guessing tokens (5 a minute a tenant)."""

    def __init__(self, key: bytes | None = None) -> None:
        self.key = key or secrets.token_bytes(32)
        self._failures: dict[str, deque[float]] = defaultdict(deque)

    def _mac(self, *parts: str) -> str:
        digest = hmac.new(self.key, "|".join(parts).encode("utf-8"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")

    def _fingerprint(self, tenant: TenantConfig) -> str:
        token = tenant.admin_token.get_secret_value() if tenant.admin_token else ""
        return self._mac("token", tenant.id, token)

    def issue(self, tenant: TenantConfig, now: float | None = None) -> str:
        body = json.dumps({"t": tenant.id, "s": secrets.token_urlsafe(16),
                           "e": int((now or time.time()) + SESSION_SECONDS),
                           "f": self._fingerprint(tenant)}, separators=(",", ":"))
        encoded = base64.urlsafe_b64encode(body.encode("utf-8")).decode("ascii").rstrip("=")
        return f"{encoded}.{self._mac('session', encoded)}"

    def read(self, cookie: str | None, tenants: Callable[[str], TenantConfig | None],
             now: float | None = None) -> Session | None:
        if not cookie or "." not in cookie:
            return None
        encoded, mac = cookie.rsplit(".", 1)
        if not hmac.compare_digest(mac, self._mac("session", encoded)):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
        except ValueError:
            return None
        tenant = tenants(str(data.get("t")))
        if (tenant is None or tenant.admin_token is None or not tenant.enabled
                or data.get("e", 0) < (now or time.time())):
            return None
        if not hmac.compare_digest(str(data.get("f")), self._fingerprint(tenant)):
            return None  # the token was rotated since this session began
        return Session(tenant.id, str(data.get("s")))

    def csrf(self, sid: str) -> str:
        return self._mac("csrf", sid)

    def check_csrf(self, sid: str, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(str(presented), self.csrf(sid))

    def token_matches(self, tenant: TenantConfig | None, presented: str) -> bool:
        expected = tenant.admin_token.get_secret_value() if tenant and tenant.admin_token else ""
        # Compare even when there is nothing to compare with, so the answer takes as long.
        same = hmac.compare_digest(presented.encode("utf-8"),
                                   (expected or secrets.token_urlsafe(24)).encode("utf-8"))
        return same and bool(expected) and tenant is not None and tenant.enabled

    def too_many_failures(self, tenant_id: str, now: float | None = None) -> bool:
        now = now or time.time()
        window = self._failures[tenant_id]
        while window and window[0] < now - 60:
            window.popleft()
        return len(window) >= LOGIN_FAILURES_PER_MINUTE

    def failed(self, tenant_id: str, now: float | None = None) -> None:
        self._failures[tenant_id].append(now or time.time())


# ------------------------------------------------------------------ the settings form


def _number(form: Mapping[str, str], name: str, label: str, kind: type = float) -> Any:
    raw = form.get(name, "").strip()
    if raw == "":
        return None
    try:
        return kind(raw)
    except ValueError:
        raise FormError(f"{label}: must be {'a number' if kind is float else 'a whole number'}") from None


def form_changes(form: Mapping[str, str]) -> dict[str, Any]:
    """The settings form → nested changes for TenantRegistry.update (checkbox absent = off)."""
    screening = {}
    for tier in ACTION_TIERS:
        value = _number(form, f"screening.{tier}", f"{tier} threshold")
        if value is None:
            raise FormError(f"{tier} threshold: required")
        screening[tier] = value
    actions: dict[str, Any] = {}
    for tier in ACTION_TIERS:
        priority = form.get(f"{tier}.priority", "")
        if priority and priority not in PRIORITIES:
            raise FormError(f"{tier} priority: choose one from the list")
        tags = [t for t in form.get(f"{tier}.tags", "").replace(",", " ").split() if t]
        actions[tier] = {
            "note": f"{tier}.note" in form, "priority": priority or None,
            "group_id": _number(form, f"{tier}.group_id", f"{tier} group id", int),
            "route_to_trained_group": f"{tier}.route_to_trained_group" in form,
            "macro_id": _number(form, f"{tier}.macro_id", f"{tier} macro id", int),
            "apply_macro": f"{tier}.apply_macro" in form, "unassign": f"{tier}.unassign" in form,
            "auto_reply": tier == "imminent" and "imminent.auto_reply" in form,
            "tags": [t.lower() for t in tags],
        }
    return {"screening": screening, "actions": actions,
            "trained_group_id": _number(form, "trained_group_id", "trained group id", int),
            "auto_reply": {"enabled": "auto_reply.enabled" in form,
                           "outside_business_hours_only": "auto_reply.outside_hours" in form,
                           "business_hours": form.get("auto_reply.business_hours", "").strip()
                           or "09:00-17:00",
                           "time_zone": form.get("auto_reply.time_zone", "").strip() or "UTC"}}


def candidate_tenant(tenant: TenantConfig, form: Mapping[str, str]) -> TenantConfig:
    """The tenant as it would be with the form's values (validated, not saved)."""
    from ..registry import apply_changes

    # The same merge `registry.update` uses (a partial tier keeps its defaults).
    return apply_changes(tenant, form_changes(form))


# ------------------------------------------------------------------ preview (pure)


def highlight(text: str, spans: list[tuple[int, int, str]]) -> str:
    """The text, escaped, with each signal span in a <mark> (overlaps merged)."""
    merged: list[list[Any]] = []
    for start, end, label in sorted(s for s in spans if 0 <= s[0] < s[1] <= len(text)):
        if merged and start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
            merged[-1][2] = f"{merged[-1][2]}, {label}" if label not in merged[-1][2] else merged[-1][2]
        else:
            merged.append([start, end, label])
    out, cursor = [], 0
    for start, end, label in merged:
        out.append(html.escape(text[cursor:start]))
        out.append(f'<mark title="{html.escape(label)}">{html.escape(text[start:end])}</mark>')
        cursor = end
    out.append(html.escape(text[cursor:]))
    return "".join(out)


def preview_result(text: str, tenant: TenantConfig, *, locale: str | None = None) -> dict[str, Any]:
    """Tier, score, highlighted signals and the plan policy.plan makes for this tenant."""
    assessment = screen(text, locale=locale)
    ticket = Ticket(vendor=tenant.vendor, tenant_id=tenant.id, ticket_id="preview", text=text,
                    requester_locale=locale)
    planned = plan(assessment, tenant, ticket, job_id="preview")
    signals = [{"rule": s.rule, "category": s.category, "flags": sorted(s.flags),
                "words": None if category_key(s.category) in MASKED_CATEGORY_KEYS
                else text[s.start:s.end]} for s in assessment.signals]
    return {
        "tier": tier_for_tenant(assessment, tenant),
        "score": round(float(assessment.score), 3), "language": assessment.language,
        "flags": sorted(assessment.flags), "signals": signals,
        "highlighted_html": highlight(text, [(s.start, s.end, s.category)
                                             for s in assessment.signals]),
        "plan": {"actions": list(planned.actions()), "tags": list(planned.add_tags),
                 "priority": planned.priority, "group_id": planned.group_id,
                 "macro_id": planned.macro_id, "apply_macro": planned.apply_macro,
                 "unassign": planned.unassign,
                 "note_html": sanitise_note(planned.note_html) if planned.note_html else None,
                 "auto_reply_html": (sanitise_note(planned.auto_reply_html)
                                     if planned.auto_reply_html else None)},
        "thresholds": tenant.screening.model_dump(),
    }


# ------------------------------------------------------------------ figures from the decisions


async def tenant_figures(service: Service, tenant_id: str,
                         now: float | None = None) -> dict[str, Any]:
    """Last 7 days: tickets per tier, feedback rate, median webhook→routed; precision all time."""
    since = (now or time.time()) - WEEK
    activity = await load_activity(service.store, tenant_id, since)
    [report] = await load_report(service.store, tenant_id)
    return {"tiers": await service.audit.tier_counts(tenant_id, since),
            "flagged": activity.flagged, "feedback": activity.feedback,
            "feedback_rate": activity.feedback_rate, "routed": len(activity.routed_seconds),
            "median_routed_seconds": activity.median_routed_seconds, "report": report}


# ------------------------------------------------------------------ rendering


def _template(name: str) -> string.Template:
    return string.Template(package_files.files(__package__).joinpath("admin_assets", name)
                           .read_text(encoding="utf-8"))


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _checked(on: bool) -> str:
    return " checked" if on else ""


def _settings_fields(tenant: TenantConfig) -> str:
    tiers = []
    for tier in ACTION_TIERS:
        a = tenant.actions.for_tier(tier)
        boxes = [("note", "Add the internal note", a.note),
                 ("route_to_trained_group", "Route to the trained group", a.route_to_trained_group),
                 ("apply_macro", "Apply the macro (Zendesk)", a.apply_macro),
                 ("unassign", "Unassign the current agent", a.unassign)]
        if tier == "imminent":
            boxes.append(("auto_reply", "Send the automatic reply (if enabled below)", a.auto_reply))
        checks = "".join(f'<div class="check"><input type="checkbox" id="{tier}.{name}" '
                         f'name="{tier}.{name}"{_checked(on)}><label for="{tier}.{name}">{label}'
                         "</label></div>" for name, label, on in boxes)
        priorities = "".join(f'<option value="{p}"{" selected" if a.priority == p else ""}>'
                             f'{p or "leave as is"}</option>' for p in ("", *PRIORITIES))
        tiers.append(_template("tier.html").substitute(
            tier=tier, checks=checks, priorities=priorities, group_id=_e(a.group_id),
            macro_id=_e(a.macro_id), tags=_e(" ".join(a.tags))))
    s, reply = tenant.screening, tenant.auto_reply
    return _template("general.html").substitute(
        concern=f"{s.concern:.2f}", high=f"{s.high:.2f}", imminent=f"{s.imminent:.2f}",
        trained_group_id=_e(tenant.trained_group_id), tiers="".join(tiers),
        reply_enabled=_checked(reply.enabled),
        reply_outside=_checked(reply.outside_business_hours_only),
        business_hours=_e(reply.business_hours), time_zone=_e(reply.time_zone))


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _figures_html(figures: dict[str, Any]) -> str:
    tiers = figures["tiers"]
    counts = "".join(f'<tr><th scope="row">{t}</th><td class="num" data-tier="{t}">{tiers.get(t, 0)}</td></tr>'
                     for t in ("none", *ACTION_TIERS))
    median = figures["median_routed_seconds"]
    routed = "–" if median is None else f"{median:.1f} s (over {figures['routed']} routed tickets)"
    report: FeedbackReport = figures["report"]
    precision = "".join(f'<tr><th scope="row">{p.key}</th><td class="num">{p.flagged}</td>'
                        f'<td class="num">{p.false_positives}</td><td class="num">{_percent(p.precision)}</td></tr>'
                        for p in report.tiers)
    rules = "".join(f'<tr><th scope="row"><code>{_e(p.key)}</code></th><td class="num">{p.flagged}</td>'
                    f'<td class="num">{p.false_positives}</td><td class="num">{_percent(p.precision)}</td></tr>'
                    for p in report.rules[:10]) or '<tr><td colspan="4">No flagged tickets yet.</td></tr>'
    head = '<tr><th scope="col">{}</th><th scope="col">Flagged</th><th scope="col">Marked not a crisis</th><th scope="col">Precision</th></tr>'
    return (f'<table class="figures"><caption>Tickets screened, last 7 days</caption>{counts}</table>'
            f'<dl class="figures"><dt>Feedback rate (7 days)</dt><dd id="feedback-rate">'
            f'{_percent(figures["feedback_rate"])} ({figures["feedback"]} feedback / {figures["flagged"]} flagged)</dd>'
            f'<dt>Median time from webhook to routed (7 days)</dt><dd id="median-routed">{routed}</dd>'
            f'<dt>Missed (agent added the missed tag), all time</dt><dd>{report.misses}</dd></dl>'
            f'<table class="figures"><caption>Precision per tier (agent feedback, all time)</caption>'
            f'{head.format("Tier")}{precision}</table>'
            f'<table class="figures"><caption>Least precise rules</caption>{head.format("Rule")}{rules}</table>')


def _changes_html(changes: list[dict[str, Any]]) -> str:
    if not changes:
        return "<p>No changes recorded yet.</p>"
    items = "".join(
        f'<li><time>{datetime.fromtimestamp(c["at"], timezone.utc):%Y-%m-%d %H:%M} UTC</time> '
        f'{_e(c["actor"])}: {_e(", ".join(c["keys"]))}</li>' for c in changes)
    return f"<ul class=\"changes\">{items}</ul>"


# ------------------------------------------------------------------ routes

AUTH: web.AppKey[AdminAuth] = web.AppKey("careroute_admin_auth", AdminAuth)
ADMIN_SERVICE: web.AppKey[Service] = web.AppKey("careroute_admin_service", Service)
REGISTRY: web.AppKey[Any] = web.AppKey("careroute_admin_registry", object)


def _html(body: str, status: int = 200) -> web.Response:
    return web.Response(text=body, status=status, content_type="text/html",
                        headers=SECURITY_HEADERS)


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    return origin is None or origin == f"{request.scheme}://{request.host}"


def _session(request: web.Request) -> Session | None:
    return request.app[AUTH].read(request.cookies.get(COOKIE),
                                  request.app[ADMIN_SERVICE].tenants.get)


def _posting_session(request: web.Request, form_csrf: str | None) -> tuple[Session, TenantConfig]:
    session = _session(request)
    tenant = request.app[ADMIN_SERVICE].tenants.get(session.tenant_id) if session else None
    if session is None or tenant is None:
        raise web.HTTPUnauthorized(text="Sign in again.", headers=SECURITY_HEADERS)
    presented = request.headers.get("X-CSRF-Token") or form_csrf
    if not _same_origin(request) or not request.app[AUTH].check_csrf(session.sid, presented):
        raise web.HTTPForbidden(text="This page has expired. Reload it.", headers=SECURITY_HEADERS)
    return session, tenant


async def _form(request: web.Request) -> dict[str, str]:
    return {k: v for k, v in (await request.post()).items() if isinstance(v, str)}


def _login_page(request: web.Request, *, error: str | None = None, tenant_id: str = "",
                status: int = 200) -> web.Response:
    nonce = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(16)
    body = _template("login.html").substitute(
        csrf=_e(request.app[AUTH].csrf("login:" + nonce)), tenant=_e(tenant_id),
        error=f'<p class="error" role="alert">{_e(error)}</p>' if error else "")
    response = _html(body, status)
    response.set_cookie(LOGIN_COOKIE, nonce, httponly=True, samesite="Strict", path="/admin",
                        secure=request.secure, max_age=3600)
    return response


async def index(request: web.Request) -> web.StreamResponse:
    if _session(request) is not None:
        raise web.HTTPSeeOther("/admin/tenant")
    return _login_page(request)


async def login(request: web.Request) -> web.StreamResponse:
    form, auth = await _form(request), request.app[AUTH]
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if not nonce or not _same_origin(request) or not auth.check_csrf("login:" + nonce,
                                                                     form.get("csrf")):
        return _login_page(request, error="The sign-in form expired. Please try again.", status=403)
    tenant_id = form.get("tenant", "").strip()[:64]
    if auth.too_many_failures(tenant_id):
        return _login_page(request, error="Too many attempts. Wait a minute and try again.",
                           tenant_id=tenant_id, status=429)
    tenant = request.app[ADMIN_SERVICE].tenants.get(tenant_id)
    if tenant is None or not auth.token_matches(tenant, form.get("token", "")):
        auth.failed(tenant_id)
        log.info("admin_login_refused", tenant=tenant.id if tenant else None)
        return _login_page(request, error="That tenant id and admin token do not match.",
                           tenant_id=tenant_id, status=401)
    log.info("admin_login", tenant=tenant.id)
    response = web.HTTPSeeOther("/admin/tenant", headers=SECURITY_HEADERS)
    response.set_cookie(COOKIE, auth.issue(tenant), httponly=True, samesite="Strict",
                        path="/admin", secure=request.secure, max_age=SESSION_SECONDS)
    response.del_cookie(LOGIN_COOKIE, path="/admin")
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    _posting_session(request, (await _form(request)).get("csrf"))
    response = web.HTTPSeeOther("/admin", headers=SECURITY_HEADERS)
    response.del_cookie(COOKIE, path="/admin")
    raise response


async def tenant_page(request: web.Request, *, errors: list[str] | None = None, status: int = 200) -> web.StreamResponse:
    session = _session(request)
    current = request.app[ADMIN_SERVICE].tenants.get(session.tenant_id) if session else None
    if session is None or current is None:
        raise web.HTTPSeeOther("/admin")
    registry = request.app[REGISTRY]
    figures = await tenant_figures(request.app[ADMIN_SERVICE], current.id)
    changes = await registry.changes(current.id, limit=10) if registry is not None else []
    notice = ""
    if errors:
        notice = ('<div class="error" role="alert"><p>Not saved:</p><ul>'
                  + "".join(f"<li>{_e(e)}</li>" for e in errors) + "</ul></div>")
    elif request.query.get("saved") == "1":
        notice = '<p class="saved" role="status">Saved. The next ticket uses these settings.</p>'
    elif registry is None:
        notice = '<p class="error" role="alert">This service has no tenant registry: settings cannot be saved here.</p>'
    body = _template("tenant.html").substitute(
        tenant=_e(current.id), vendor=_e(current.vendor), csrf=_e(request.app[AUTH].csrf(session.sid)),
        notice=notice, settings=_settings_fields(current), figures=_figures_html(figures),
        changes=_changes_html(changes))
    return _html(body, status)


async def save_settings(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    _, tenant = _posting_session(request, form.get("csrf"))
    registry = request.app[REGISTRY]
    if registry is None:
        return await tenant_page(request, errors=["this service has no tenant registry"], status=503)
    try:
        await registry.update(tenant.id, form_changes(form), actor=f"admin-page:{tenant.id}")
    except (FormError, ConfigError) as exc:
        reason = exc.reason.removeprefix(f"tenant {tenant.id!r}: ")
        return await tenant_page(request, errors=reason.split("; "), status=400)
    log.info("admin_settings_saved", tenant=tenant.id)
    raise web.HTTPSeeOther("/admin/tenant?saved=1", headers=SECURITY_HEADERS)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, headers=SECURITY_HEADERS)


async def preview(request: web.Request) -> web.StreamResponse:
    _, tenant = _posting_session(request, None)
    try:
        data = await request.json()
    except ValueError:
        return _json({"error": "send JSON"}, 400)
    if not isinstance(data, dict) or not isinstance(data.get("text"), str) or not data["text"].strip():
        return _json({"error": "Paste a text to preview."}, 400)
    if len(data["text"]) > MAX_PREVIEW_CHARS:
        return _json({"error": f"At most {MAX_PREVIEW_CHARS} characters."}, 413)
    unsaved = False
    if isinstance(data.get("settings"), dict):
        try:
            candidate = candidate_tenant(tenant, {str(k): str(v) for k, v in data["settings"].items()})
        except (FormError, ConfigError) as exc:
            return _json({"error": exc.reason.removeprefix(f"tenant {tenant.id!r}: ")}, 400)
        unsaved, tenant = candidate != tenant, candidate
    locale = data.get("locale") if isinstance(data.get("locale"), str) else None
    result = preview_result(data["text"], tenant, locale=(locale or "").strip() or None)
    return _json({**result, "unsaved_settings": unsaved})


async def asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in ASSETS:
        raise web.HTTPNotFound()
    body = package_files.files(__package__).joinpath("admin_assets", name).read_bytes()
    return web.Response(body=body, content_type=ASSETS[name],
                        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})


def setup_admin(app: web.Application, service: Service, *, registry: Any | None = None,
                auth: AdminAuth | None = None) -> None:
    """Add /admin to `app`. `registry`: a plugin.registry.TenantRegistry whose directory is
    `service.tenants` (default: `service.registry` when the service has one). Without one the
    page shows settings, preview and figures but cannot save."""
    app[AUTH] = auth or AdminAuth()
    app[ADMIN_SERVICE] = service
    app[REGISTRY] = registry if registry is not None else getattr(service, "registry", None)
    app.router.add_get("/admin", guarded(index))
    app.router.add_post("/admin/login", guarded(login))
    app.router.add_post("/admin/logout", guarded(logout))
    app.router.add_get("/admin/tenant", guarded(tenant_page))
    app.router.add_post("/admin/settings", guarded(save_settings))
    app.router.add_post("/admin/preview", guarded(preview))
    app.router.add_get("/admin/assets/{name}", guarded(asset))
