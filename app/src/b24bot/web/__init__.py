"""HTTP: thin Flask routes over jobs/ and store/."""

from .app import create_app

__all__ = ["create_app"]
