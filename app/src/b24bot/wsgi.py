"""WSGI entry point for gunicorn: `gunicorn b24bot.wsgi:app` (one app, and one hand-off thread, per worker)."""

from .web import create_app

app = create_app()
