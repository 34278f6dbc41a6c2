"""The ingest baseline: a bare Flask view that parses the event form and answers 200, storing nothing.

Served by the same gunicorn options as the app (bench/common.py:gunicorn_argv), so the ingest ratio measures
what the app adds on top of Flask + form parsing: verification, the SQLite transaction (WAL, synchronous=FULL)
and the log line.
"""

from __future__ import annotations

from flask import Flask, jsonify, request

from b24bot.bitrix import events as ev

app = Flask(__name__)


@app.post("/")
def handle():  # type: ignore[no-untyped-def]
    event = ev.parse(request.form.items(multi=True))
    return jsonify(status="ok", event=event.name)


@app.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    return jsonify(status="ok")
