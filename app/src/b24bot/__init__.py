"""b24bot: records every Bitrix24 Open Lines dialog and hands it to an operator at once."""

__version__ = "0.1.0"
