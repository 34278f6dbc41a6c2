"""The long-lived parts one process needs, built once from Settings."""

from __future__ import annotations

from dataclasses import dataclass

import requests

from ..bitrix.ratelimit import LeakyBucket
from ..bitrix.rest import RestClient
from ..bitrix.tokens import TokenStore
from ..bitrix.v2 import WebhookClient
from ..config import Settings
from ..store import Database


@dataclass
class Context:
    settings: Settings
    db: Database
    tokens: TokenStore
    client: RestClient
    session: requests.Session

    @classmethod
    def build(cls, settings: Settings) -> Context:
        session = requests.Session()
        tokens = TokenStore(
            settings.auth_path,
            settings.client_id,
            settings.client_secret,
            settings.oauth_url,
            timeout=settings.rest_timeout,
            session=session,
        )
        limiter = LeakyBucket(settings.data_dir / "ratelimit.state", settings.rest_rate, settings.rest_burst)
        client = RestClient(tokens, limiter, timeout=settings.rest_timeout, session=session)
        if settings.webhook_url:  # Chatbots 2.0 through an inbound webhook: every call goes that way
            client = WebhookClient(settings.webhook_url, limiter, timeout=settings.rest_timeout, session=session)
        return cls(settings, Database(settings.db_path, settings.db_synchronous), tokens, client, session)
