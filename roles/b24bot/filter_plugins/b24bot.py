"""Filters used by the b24bot role.

b24bot_idna        'бот.мойдомен.рф' -> 'xn--90a0am.xn--d1acklchcc.xn--p1ai' (nginx and
                   Bitrix24 need the ASCII form; Jinja has no builtin for it).
b24bot_env_quote   value -> a double-quoted string that systemd's EnvironmentFile= and a
                   POSIX shell both read back as the same bytes.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

# Characters systemd (and sh) treat specially inside double quotes.
_ENV_ESCAPE = ("\\", '"', "`", "$")


def b24bot_idna(domain):
    """Return the punycode (IDNA) form of a domain name, lower-cased, no trailing dot."""
    if domain is None:
        return ""
    name = str(domain).strip().rstrip(".")
    if not name:
        return ""
    labels = []
    for label in name.split("."):
        if not label:
            raise AnsibleFilterError(f"b24bot_idna: empty label in domain {name!r}")
        if label.isascii():
            labels.append(label.lower())
            continue
        try:
            labels.append(label.encode("idna").decode("ascii").lower())
        except UnicodeError as exc:
            raise AnsibleFilterError(f"b24bot_idna: cannot convert {name!r}: {exc}") from exc
    return ".".join(labels)


def b24bot_env_quote(value):
    """Quote a value for a systemd EnvironmentFile (also valid POSIX sh)."""
    if value is None:
        value = ""
    if isinstance(value, bool):
        value = "true" if value else "false"
    text = str(value)
    if "\n" in text or "\r" in text or "\x00" in text:
        raise AnsibleFilterError("b24bot_env_quote: values must be single-line")
    for char in _ENV_ESCAPE:
        text = text.replace(char, "\\" + char)
    return f'"{text}"'


class FilterModule:
    """b24bot role filters."""

    def filters(self):
        return {
            "b24bot_idna": b24bot_idna,
            "b24bot_env_quote": b24bot_env_quote,
        }
