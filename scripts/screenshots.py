"""Render each viewer page headless into docs/screenshots/*.png (for the README).

    python scripts/screenshots.py [OUT_DIR]
    python scripts/screenshots.py --url URL --user USER --password-file FILE --chat CHAT_ID OUT_DIR

The first form starts the simulated portal and the app under gunicorn (the test fixtures' classes), seeds a week
of dialogs through the real event path, logs in with Debian's chromium and saves the dialogs list, a transcript, a
search, the reports and the login page. The second shoots a running instance (`make demo` uses it): URL is the
instance's handler URL (ending in its prefix and a slash).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import conftest as c  # noqa: E402

CLIENT_LINES = [
    "Добрый день! Где мой заказ 4821? Обещали доставить вчера.",
    "Hello, can I change the delivery address for order 5530?",
    "Здравствуйте, хочу вернуть товар, не подошёл размер.",
    "Подскажите, есть ли самовывоз в Казани?",
    "Is the blue model back in stock?",
]
OPERATOR_LINES = [
    "Здравствуйте! Заказ передан курьеру, трек-номер RB123456789RU.",
    "Yes, I have changed the address, the courier will call you.",
    "Конечно, оформим возврат. Пришлите, пожалуйста, фото чека.",
    "Да, пункт выдачи на ул. Баумана, 12, с 10 до 20.",
]
OPERATORS = [(17, "Ольга Смирнова"), (18, "Ivan Petrov"), (19, "Марина Ким")]


def seed(app: c.App, now: int) -> None:
    rnd = random.Random(11)  # noqa: S311 - demo data
    mid = 20_000
    for n in range(14):
        chat, client, line = 300 + n, 6000 + n, 1 + n % 3
        t = now - (6 - n // 2) * 86400 + rnd.randint(0, 30000) - 40000
        assert app.join(chat, line=line, client=client).status_code == 200
        kw = {"line": line, "client_id": client, "session_id": 400 + n, "title": f"Клиент {client}"}
        mid += 1
        app.message(chat, mid, rnd.choice(CLIENT_LINES), ts=t, name=f"Клиент {client}", **kw)
        if n in (12, 13):
            continue  # still waiting
        op_id, op_name = OPERATORS[n % 3]
        t += rnd.choice((45, 90, 150, 240, 420, 900))
        mid += 1
        app.message(chat, mid, rnd.choice(OPERATOR_LINES), client=False, author=op_id, name=op_name, ts=t, **kw)
        mid += 1
        app.message(chat, mid, "Спасибо!", ts=t + 60, name=f"Клиент {client}", **kw)
    c.seed_viewer(app, now - 900)


def seeded(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="b24bot-shots-"))
    portal = c.PortalSim(c.free_port(), work / "portal-state.json")
    portal.start()
    app = c.App(work, portal, c.free_port())
    app.env_extra.update(c.viewer_env())
    app.start()
    try:
        assert app.install().status_code == 200
        seed(app, int(time.time()))
        b = c.Browser(app, work)
        b.driver.set_window_size(1280, 900)
        try:
            shoot(b, out, c.VIEWER_USER, c.VIEWER_PASSWORD, 201)
        finally:
            b.driver.quit()
    finally:
        app.stop()
        portal.stop()
    print(f"screenshots in {out}")
    return 0


class Running:
    """A deployed instance where Browser expects the fixtures' App: only its URL is used."""

    def __init__(self, url: str) -> None:
        self.url = url if url.endswith("/") else url + "/"


def running(url: str, user: str, password: str, chat: int, out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    b = c.Browser(Running(url), Path(tempfile.mkdtemp(prefix="b24bot-shots-")))  # type: ignore[arg-type]
    b.driver.set_window_size(1280, 900)
    try:
        shoot(b, out, user, password, chat)
    finally:
        b.driver.quit()
    print(f"screenshots in {out}")
    return 0


def shoot(b: c.Browser, out: Path, user: str, password: str, chat: int) -> None:
    b.get("ui/login")
    b.driver.save_screenshot(str(out / "login.png"))
    b.css("#user").send_keys(user)
    b.css("#password").send_keys(password)
    b.css("#login").click()
    b.wait(lambda d: "/ui/login" not in d.current_url and b.all("#dialogs"), "the dialogs list")
    pages = {
        "dialogs.png": "ui/dialogs",
        "transcript.png": f"ui/dialogs/{chat}",
        "search.png": "ui/search?q=%D0%B7%D0%B0%D0%BA%D0%B0%D0%B7",  # заказ
        "reports.png": "ui/reports",
    }
    for name, path in pages.items():
        b.get(path)
        height = b.driver.execute_script("return document.documentElement.scrollHeight")
        b.driver.set_window_size(1280, min(max(900, height), 2000))
        b.driver.save_screenshot(str(out / name))
        b.driver.set_window_size(1280, 900)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", type=Path, default=ROOT / "docs" / "screenshots")
    ap.add_argument("--url", help="a running instance's handler URL instead of a seeded local one")
    ap.add_argument("--user", default="")
    ap.add_argument("--password-file", type=Path, help="the viewer password (never on the command line)")
    ap.add_argument("--chat", type=int, default=0, help="the dialog whose transcript is shot")
    args = ap.parse_args(argv)
    if not args.url:
        return seeded(args.out)
    if not (args.user and args.password_file and args.chat):
        ap.error("--url needs --user, --password-file and --chat")
    return running(args.url, args.user, args.password_file.read_text().strip(), args.chat, args.out)


if __name__ == "__main__":
    sys.exit(main())
