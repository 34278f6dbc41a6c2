"""The viewer in a real browser (headless chromium): the journey a quality lead takes, and the refusals."""

from __future__ import annotations

import csv
import io
import time

from selenium.webdriver.support.ui import Select

from conftest import VIEWER_PASSWORD, VIEWER_USER, Browser


def log_in(b: Browser, password: str = VIEWER_PASSWORD) -> None:
    b.get("ui/dialogs")  # not logged in: lands on the login page
    b.wait(lambda d: "/ui/login" in d.current_url, "the login page")
    b.css("#user").send_keys(VIEWER_USER)
    b.css("#password").send_keys(password)
    b.css("#login").click()


def logged_in(d: object, b: Browser) -> bool:
    """On the dialogs list for real (the login page's own URL also ends in next=/ui/dialogs)."""
    return "/ui/login" not in b.driver.current_url and bool(b.all("#dialogs"))


def test_log_in_read_search_filter_download_log_out(browser: Browser) -> None:
    b = browser
    log_in(b)
    b.wait(lambda d: logged_in(d, b), "the dialogs list after login")
    b.snap("dialogs")
    assert [r.get_attribute("data-chat") for r in b.all("#dialogs tbody tr")] == ["203", "202", "201"]

    # Open a dialog from the list.
    b.css('tr[data-chat="201"] a.dialog-link').click()
    b.wait(lambda d: d.current_url.endswith("/ui/dialogs/201"), "the transcript")
    b.snap("transcript")
    assert b.css("#m9001").text.count("Где мой ЗАКАЗ 48213?") == 1
    assert "edited" in b.css("#m9002").text and "deleted" in b.css("#m9004").text
    assert "<script>" in b.css("#m9003 .text").text  # shown as text, never run

    # Search a Cyrillic word in another case and land on the message.
    b.css("#nav-search").click()
    b.wait(lambda d: "/ui/search" in d.current_url, "the search page")
    b.css("#q").send_keys("заказ")
    b.css("#search-go").click()
    b.wait(lambda d: b.all("a.hit"), "search hits")
    b.snap("search")
    marks = [m.text for m in b.all("#hits mark")]
    assert "ЗАКАЗ" in marks and "Заказ" in marks
    hit = next(a for a in b.all("a.hit") if a.get_attribute("href").endswith("#m9001"))
    hit.click()
    b.wait(lambda d: d.current_url.endswith("#m9001"), "the transcript at the hit")
    b.snap("landed")
    assert "hit" in b.css("#m9001").get_attribute("class")

    # Filter the list: line 2, then "no operator reply yet" (htmx swaps the rows in place).
    b.css("#nav-dialogs").click()
    b.wait(lambda d: len(b.all("#dialogs tbody tr")) == 3, "the full list")
    Select(b.css("#f-line")).select_by_value("2")
    b.wait(lambda d: [r.get_attribute("data-chat") for r in b.all("#dialogs tbody tr")] == ["202"], "line 2 only")
    Select(b.css("#f-line")).select_by_value("")
    b.css("#f-unanswered").click()
    b.wait(lambda d: [r.get_attribute("data-chat") for r in b.all("#dialogs tbody tr")] == ["202"], "unanswered")
    b.snap("filtered")
    assert "unanswered=1" in b.driver.current_url  # the filter is in the address: reload or share it

    # Reports, and the CSV of one row per conversation.
    b.css("#nav-reports").click()
    b.wait(lambda d: b.all("#chart rect.bar"), "the chart")
    b.snap("reports")
    b.css("#csv").click()
    files = b.wait(lambda d: [f for f in b.downloads.glob("*.csv")], "the CSV download", timeout=15)
    time.sleep(0.2)  # chromium renames the finished file into place; let it settle
    rows = list(csv.DictReader(io.StringIO(files[0].read_text(encoding="utf-8-sig"))))
    assert sorted(r["chat_id"] for r in rows) == ["201", "202", "203"]
    assert {r["chat_id"]: r["first_response_s"] for r in rows} == {"201": "90", "202": "", "203": "600"}
    assert next(r for r in rows if r["chat_id"] == "203")["client"] == "'=HYPERLINK(1)"

    # Log out: the pages are closed again.
    b.css("#logout").click()
    b.wait(lambda d: "/ui/login" in d.current_url, "the login page after logout")
    b.get("ui/dialogs/201")
    assert "/ui/login" in b.driver.current_url and not b.all("#m9001")


def test_wrong_password_and_missing_csrf_are_refused(browser: Browser) -> None:
    b = browser
    log_in(b, "not the password")
    b.wait(lambda d: b.all("#login-error"), "the login error")
    b.snap("wrong-password")
    assert "Wrong user name or password" in b.css("#login-error").text
    b.get("ui/dialogs")
    assert "/ui/login" in b.driver.current_url

    b.css("#password").send_keys(VIEWER_PASSWORD)
    b.css("#user").send_keys(VIEWER_USER)
    b.css("#login").click()
    b.wait(lambda d: logged_in(d, b), "logged in")
    b.get("ui/erase?client=5001")
    b.css("#confirm").click()
    b.driver.execute_script("document.querySelector('#erase-form input[name=csrf]').remove()")
    b.css("#erase").click()
    b.wait(lambda d: b.all("#error"), "the refusal")
    b.snap("csrf-refused")
    assert "CSRF" in b.css("#error").text
    b.get("ui/dialogs/201")
    assert b.all("#m9001")  # nothing was erased
