"""The web viewer over HTTP, who gets in: login, session cookie, CSRF, rate limit, redirects after login,
the passwd helper, the session key file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import requests
from werkzeug.security import check_password_hash

from conftest import (
    ROOT,
    VIEWER_PASSWORD,
    VIEWER_USER,
    App,
    PortalSim,
    csrf_of,
    free_port,
    viewer_env,
    viewer_login,
)


def login_post(app: App, s: requests.Session, password: str, **extra: str) -> requests.Response:
    token = csrf_of(s.get(app.url + "ui/login", timeout=10).text)
    data = {"user": VIEWER_USER, "password": password, "csrf": token, **extra}
    return s.post(app.url + "ui/login", data=data, allow_redirects=False, timeout=10)


def test_pages_need_a_login_and_a_wrong_password_is_refused(viewer: App) -> None:
    s = requests.Session()
    resp = s.get(viewer.url + "ui/dialogs", allow_redirects=False, timeout=10)
    assert resp.status_code == 303 and "/ui/login" in resp.headers["Location"]
    resp = login_post(viewer, s, "wrong password")
    assert resp.status_code == 401 and "Wrong user name or password" in resp.text
    assert s.get(viewer.url + "ui/dialogs", allow_redirects=False, timeout=10).status_code == 303
    # The API token is no viewer password.
    assert login_post(viewer, requests.Session(), "api-token-0123456789abcdef").status_code == 401


def test_session_cookie_flags_and_logout(viewer: App) -> None:
    s = requests.Session()
    resp = login_post(viewer, s, VIEWER_PASSWORD)
    assert resp.status_code == 303
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/ui/" in cookie
    assert "Secure" not in cookie  # plain http here: a Secure cookie would never come back
    assert s.get(viewer.url + "ui/dialogs", timeout=10).status_code == 200
    cookie_value = s.cookies["b24bot_viewer"]
    copy = requests.get(viewer.url + "ui/dialogs", cookies={"b24bot_viewer": cookie_value}, timeout=10)
    assert 'id="dialogs"' in copy.text  # the copy works while the session lives
    token = csrf_of(s.get(viewer.url + "ui/dialogs", timeout=10).text)
    assert s.post(viewer.url + "ui/logout", data={"csrf": token}, allow_redirects=False, timeout=10).status_code == 303
    assert s.get(viewer.url + "ui/dialogs", allow_redirects=False, timeout=10).status_code == 303
    # A copy of the cookie taken before logout is dead too: sessions live on the server.
    replay = requests.get(viewer.url + "ui/dialogs", cookies={"b24bot_viewer": cookie_value}, timeout=10)
    assert "/ui/login" in replay.url and 'id="dialogs"' not in replay.text
    # Behind nginx the cookie and the links follow the public prefix.
    page = requests.get(viewer.url + "ui/login", headers={"X-Forwarded-Prefix": "/python_bot"}, timeout=10)
    assert 'action="/python_bot/ui/login"' in page.text and "Path=/python_bot/ui/" in page.headers["Set-Cookie"]
    page = requests.get(viewer.url + "ui/login", headers={"X-Forwarded-Prefix": '/x"><script>'}, timeout=10)
    assert "<script>" not in page.text.split("</head>")[1]


def test_secure_cookie_when_configured(tmp_path: Path, portal: PortalSim) -> None:
    app = App(tmp_path, portal, free_port())
    app.env_extra.update(viewer_env(), B24BOT_VIEWER_SECURE_COOKIE="1")
    app.start()
    try:
        # The login page already sets the cookie (its CSRF token); a client over plain http never sends it back.
        resp = requests.get(app.url + "ui/login", timeout=10)
        assert "Secure" in resp.headers["Set-Cookie"] and "HttpOnly" in resp.headers["Set-Cookie"]
    finally:
        app.stop()


def test_every_post_needs_the_csrf_token(viewer: App) -> None:
    s = viewer_login(viewer)
    for data in ({"client": "5001", "confirm": "yes"}, {"client": "5001", "confirm": "yes", "csrf": "forged"}):
        resp = s.post(viewer.url + "ui/erase", data=data, timeout=10)
        assert resp.status_code == 400 and "CSRF" in resp.text
    assert viewer.count("messages") > 0 and s.get(viewer.url + "ui/dialogs/201", timeout=10).status_code == 200
    fresh = requests.Session()
    fresh.get(viewer.url + "ui/login", timeout=10)
    resp = fresh.post(viewer.url + "ui/login", data={"user": VIEWER_USER, "password": VIEWER_PASSWORD}, timeout=10)
    assert resp.status_code == 400
    assert s.post(viewer.url + "ui/logout", timeout=10).status_code == 400


def test_login_rate_limit_holds_across_workers(viewer: App) -> None:
    for _ in range(5):  # a fresh connection each time: gunicorn hands them to either worker
        assert login_post(viewer, requests.Session(), "guess").status_code == 401
    resp = login_post(viewer, requests.Session(), VIEWER_PASSWORD)
    assert resp.status_code == 429 and "Too many failed logins" in resp.text
    with viewer.db() as conn:
        assert conn.execute("SELECT failures FROM viewer_logins").fetchone()[0] == 5


def test_next_after_login_stays_inside_the_viewer(viewer: App) -> None:
    for nxt, where in (
        ("/ui/search?q=x", "/ui/search?q=x"),
        ("//evil.example/", "/ui/dialogs"),
        ("https://e.x/", "/ui/dialogs"),
    ):
        resp = login_post(viewer, requests.Session(), VIEWER_PASSWORD, next=nxt)
        assert resp.headers["Location"] == where


def test_viewer_is_off_without_accounts(app: App) -> None:
    resp = requests.get(app.url + "ui/login", timeout=10)
    assert resp.status_code == 503 and "B24BOT_VIEWER_USERS" in resp.text


def test_passwd_prints_a_hash_from_stdin() -> None:
    env = {"PYTHONPATH": str(ROOT / "app" / "src"), "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "b24bot", "passwd", "alice"]
    out = subprocess.run(cmd, input="s3cret-pass\n", capture_output=True, text=True, env=env, check=True).stdout
    user, _, hashed = out.strip().partition(":")
    assert user == "alice" and check_password_hash(hashed, "s3cret-pass") and "s3cret" not in hashed
    short = subprocess.run(cmd, input="short\n", capture_output=True, text=True, env=env)
    assert short.returncode == 2


def test_session_key_file_is_private_and_shared(viewer: App) -> None:
    key = viewer.data_dir / "viewer-secret"
    assert key.stat().st_mode & 0o777 == 0o600 and len(key.read_text()) == 64
    s = viewer_login(viewer)
    for _ in range(6):  # fresh connections land on both workers: each accepts the other's cookie
        assert 'id="dialogs"' in requests.get(viewer.url + "ui/dialogs", cookies=s.cookies, timeout=10).text
    headers = {"X-Forwarded-Prefix": "/python_bot"}
    home = requests.get(viewer.url + "ui", headers=headers, allow_redirects=False, timeout=10)
    assert home.status_code == 303 and home.headers["Location"].startswith("/python_bot/ui/")
