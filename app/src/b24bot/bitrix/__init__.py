"""Everything that speaks Bitrix24: event parsing, OAuth tokens, the REST client. Knows nothing of Flask or SQLite."""
