"""The web viewer under /ui/: accounts, session cookie, CSRF, shared helpers. Pages live in ui_pages.py and
ui_reports.py; templates and vendored static files ship inside the package."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from flask import Blueprint, Flask, Response, abort, g, redirect, render_template, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from markupsafe import Markup
from werkzeug.security import check_password_hash, generate_password_hash

from .. import config
from ..store import logins
from .state import services

log = logging.getLogger(__name__)

bp = Blueprint("ui", __name__, url_prefix="/ui", template_folder="templates", static_folder="static")
SECRET_FILE = "viewer-secret"  # noqa: S105 - a file name
SESSION_HOURS = 12
LOGIN_MAX_FAILURES = 5
LOGIN_WINDOW_S = 15 * 60
_PREFIX_RE = re.compile(r"^(/[A-Za-z0-9._~-]+)*$")
_DUMMY_HASH = generate_password_hash("not a password: keeps unknown users as slow as known ones")
OPEN_ENDPOINTS = ("ui.login", "ui.static")
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


def prefix() -> str:
    """The public path the proxy serves the app under (nginx sends X-Forwarded-Prefix); '' when reached directly."""
    raw = request.headers.get("X-Forwarded-Prefix", "").rstrip("/")
    return raw if _PREFIX_RE.match(raw) else ""


def link(endpoint: str, **values: Any) -> str:
    return prefix() + url_for(endpoint, **values)


class ViewerSessions(SecureCookieSessionInterface):
    """Signed cookie: HttpOnly, SameSite=Strict, Secure over https, scoped to this instance's /ui/ path."""

    def get_cookie_name(self, app: Flask) -> str:
        return "b24bot_viewer"

    def get_cookie_path(self, app: Flask) -> str:
        return prefix() + "/ui/"

    def get_cookie_secure(self, app: Flask) -> bool:
        return services().ctx.settings.viewer_secure_cookie or request.is_secure

    def get_cookie_samesite(self, app: Flask) -> str:
        return "Strict"

    def get_cookie_httponly(self, app: Flask) -> bool:
        return True


def secret_key(settings: config.Settings) -> str | None:
    """B24BOT_SECRET_KEY, or a key generated once into the data dir (0600), shared by every worker."""
    if settings.secret_key:
        return settings.secret_key
    path = Path(settings.data_dir) / SECRET_FILE
    try:
        if not path.exists():
            tmp = path.with_name(f".{SECRET_FILE}.{os.getpid()}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
            try:
                os.link(tmp, path)  # atomic: the first worker wins, the others read its key
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        return path.read_text().strip() or None
    except OSError as exc:
        log.error("viewer disabled: cannot keep a session key in %s (%s); set B24BOT_SECRET_KEY", path, exc)
        return None


def init_app(app: Flask) -> None:
    settings = app.extensions["b24bot"].ctx.settings
    key = secret_key(settings)
    app.extensions["b24bot_ui_enabled"] = bool(key and settings.viewer_users)
    app.secret_key = key or secrets.token_hex(32)  # unused when disabled: every /ui/ page answers 503
    app.session_interface = ViewerSessions()
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=SESSION_HOURS)
    from . import ui_pages, ui_reports  # noqa: F401 - routes register on bp

    app.register_blueprint(bp)


# ---- per-request guards -------------------------------------------------------------------------------------


def _account_fingerprint(hashed: str) -> str:
    """Changing a password (or removing the account) ends its sessions."""
    return hashlib.sha256(hashed.encode()).hexdigest()[:16]


def current_user() -> str | None:
    """The account of a live server-side session: logout and expiry hold even against a copied cookie."""
    user, sid = session.get("user"), session.get("sid")
    users = services().ctx.settings.viewer_users
    if not user or not sid or user not in users or session.get("acct") != _account_fingerprint(users[user]):
        return None
    if logins.session_user(services().ctx.db.read(), sid, time.time()) != user:
        return None
    return user


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


@bp.before_request
def guard() -> Any:
    from flask import current_app

    if not current_app.extensions.get("b24bot_ui_enabled"):
        return page("error.html", 503, message="The viewer is off: no B24BOT_VIEWER_USERS (or no session key).")
    if request.method == "POST":
        given = request.form.get("csrf") or request.headers.get("X-CSRF-Token", "")
        expected = session.get("csrf", "")
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            return page("error.html", 400, message="The form has expired or did not come from this site (CSRF).")
    g.viewer_user = current_user() if request.endpoint != "ui.static" else None
    if request.endpoint in OPEN_ENDPOINTS or g.viewer_user:
        return None
    target = request.full_path if request.method == "GET" else ""
    url = link("ui.login", next=target.rstrip("?")) if target else link("ui.login")
    if request.headers.get("HX-Request"):
        return Response(status=204, headers={"HX-Redirect": url})
    return redirect(url, 303)


@bp.after_request
def headers(resp: Response) -> Response:
    resp.headers.setdefault("Content-Security-Policy", CSP)
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"  # search words sit in URLs
    if request.endpoint != "ui.static":
        resp.headers["Cache-Control"] = "no-store"
    return resp


def page(template: str, status: int = 200, **values: Any) -> Response:
    resp = Response(render_template(f"ui/{template}", **values), status=status, mimetype="text/html")
    return resp


@bp.app_template_global()
def ui_link(endpoint: str, **values: Any) -> str:
    return link(endpoint, **values)


@bp.app_context_processor
def common() -> dict[str, Any]:
    if request.blueprint != "ui":
        return {}
    return {"csrf_token": csrf_token, "viewer_user": g.get("viewer_user"), "tz_name": _tz_name()}


# ---- formatting -----------------------------------------------------------------------------------------------


def _tz_name() -> str:
    return services().ctx.settings.timezone


def tz() -> ZoneInfo:
    return ZoneInfo(_tz_name())


@bp.app_template_filter("local")
def local_time(iso: str | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    if not iso:
        return ""
    try:
        return datetime.fromisoformat(iso).astimezone(tz()).strftime(fmt)
    except ValueError:
        return iso


@bp.app_template_filter("ts_local")
def ts_local(ts: float | None) -> str:
    if not ts:
        return ""
    return datetime.fromtimestamp(ts, timezone.utc).astimezone(tz()).strftime("%Y-%m-%d %H:%M:%S")


@bp.app_template_filter("dur")
def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


def highlight(text: str, query: str, width: int = 160) -> Markup:
    """A window of `text` around the first hit, every query word marked (case-insensitive, ё = е)."""
    from ..store.text import _WORD, search_text

    words = [w for w in _WORD.findall(search_text(query)) if w]
    folded = search_text(text)
    if len(folded) != len(text):  # casefold changed lengths (ß -> ss): mark nothing rather than mis-mark
        return Markup.escape(text[:width])
    spans = []
    for w in words:
        spans += [(m.start(), m.start() + len(w)) for m in re.finditer(re.escape(w), folded)]
    spans.sort()
    first = spans[0][0] if spans else 0
    lo = max(0, first - width // 3)
    hi = min(len(text), lo + width)
    out, pos = [Markup("…") if lo else Markup("")], lo
    for a, b in spans:
        if a < pos or b > hi:
            continue
        out += [Markup.escape(text[pos:a]), Markup("<mark>"), Markup.escape(text[a:b]), Markup("</mark>")]
        pos = b
    out += [Markup.escape(text[pos:hi]), Markup("…") if hi < len(text) else Markup("")]
    return Markup("").join(out)


def safe_next(target: str) -> str:
    """Only a path inside the viewer: no scheme, no host, no //evil.example."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/ui/") or "\\" in target:
        return link("ui.dialogs")
    return prefix() + target


# ---- login / logout ---------------------------------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    nxt = request.values.get("next", "")
    if request.method == "GET":
        return page("login.html", next=nxt)
    user = request.form.get("user", "")[:64]
    password = request.form.get("password", "")[:1024]
    key = f"{user}|{request.remote_addr}"
    ctx = services().ctx
    now = time.time()
    if logins.blocked(ctx.db.read(), key, now, LOGIN_MAX_FAILURES, LOGIN_WINDOW_S):
        return page("login.html", 429, next=nxt, error="Too many failed logins: try again in 15 minutes.")
    hashed = ctx.settings.viewer_users.get(user)
    ok = check_password_hash(hashed or _DUMMY_HASH, password) and hashed is not None
    sid = secrets.token_urlsafe(24)
    with ctx.db.write() as conn:
        if ok:
            logins.succeeded(conn, key)
            logins.session_start(conn, sid, user, now, SESSION_HOURS * 3600)
        else:
            logins.failed(conn, key, now, LOGIN_WINDOW_S)
    if not ok:
        log.warning("viewer: failed login from %s", request.remote_addr)
        return page("login.html", 401, next=nxt, error="Wrong user name or password.")
    session.clear()
    session.permanent = True
    session.update(user=user, sid=sid, acct=_account_fingerprint(hashed or ""), csrf=secrets.token_urlsafe(32))
    log.info("viewer: %s logged in", user)
    return redirect(safe_next(nxt), 303)


@bp.post("/logout")
def logout() -> Any:
    if session.get("sid"):
        with services().ctx.db.write() as conn:
            logins.session_end(conn, session["sid"])
    session.clear()
    return redirect(link("ui.login"), 303)


@bp.get("")
@bp.get("/")
def home() -> Any:
    return redirect(link("ui.dialogs"), 303)


def abort_bad(message: str) -> None:
    abort(page("error.html", 400, message=message))


@bp.errorhandler(404)
def not_found(_exc: Any) -> Any:
    return page("error.html", 404, message="Not found (erased, or never recorded).")
