"""Keep credentials out of every log line, error message and CLI output."""

from __future__ import annotations

import re

# scheme://user:password@host  ->  scheme://user:***@host
_USERINFO = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^:@/\s]*):(?P<pw>[^\s/?#]*)@"
)
# ...?password=secret&...  (and authMechanismProperties values that may hold tokens)
_QUERY_SECRET = re.compile(
    r"(?i)(?P<key>(?:password|pwd|secret|token|AWS_SESSION_TOKEN|authMechanismProperties)=)"
    r"(?P<value>[^&\s]*)"
)


def redact_uri(text: str) -> str:
    """Return `text` with every password of a connection string replaced by `***`.

    Works on a bare URI and on any message that contains one.
    """
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    return _QUERY_SECRET.sub(lambda m: f"{m['key']}***", text)
