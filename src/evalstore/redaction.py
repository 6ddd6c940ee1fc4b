"""Keep credentials out of every log line, error message and CLI output.

pymongo splits a connection string's userinfo (`user:password@`) from its hosts at the
LAST `@`, and takes `#` and spaces in a password as they are; `/`, `?` or an unescaped
`%` make it refuse or misread the string, which is then echoed in an error. So
redaction masks everything from just after the user name up to the last `@`, whatever
it holds, rather than stopping at the first character a password "should not" hold.
"""

from __future__ import annotations

import re

MASK = "***"
"""What stands for a password (and for all of a text that could not be redacted)."""

# A URI scheme: a letter, then letters, digits, `+`, `-` or `.`, then `://`. The look-behind
# makes a match start where the scheme's name does (`xmongodb://` is one scheme, not `mongodb://`
# inside a word), and keeps the scan linear on long runs of letters.
_SCHEME = re.compile(r"(?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]*://")
# Only a scheme at the start, after whitespace or after one of these starts a URI in a text;
# one after anything else (`u:x://y@h`) is part of a word, which may hold a password.
_URI_STARTERS = frozenset("'\"(<[{,;=")
# ...?password=secret&...  (and authMechanismProperties values that may hold tokens)
_QUERY_SECRET = re.compile(
    r"(?i)(?P<key>(?:password|pwd|secret|token|AWS_SESSION_TOKEN|authMechanismProperties)=)"
    r"(?P<value>[^&\s]*)"
)
_TOKEN = re.compile(r"\S+")
_OPENING = "'\"(<[{"
_NOT_IN_A_SHOWN_USER = re.compile(r"[\s@/?#]")


def redact_connection_string(value: str) -> str:
    """Return one connection string with its password replaced by `***`, safe to show.

    The userinfo is everything between `scheme://` and the last `@`:
    `mongodb://user:p@ss/w#rd@host/db` becomes `mongodb://user:***@host/db`. A value
    without `scheme://` (`user:pw@host`, `mongodb:/user:pw@host`) keeps only what
    follows its last `@` (and a plain user name). A password passed as a query option
    (`password=`, `tlsCertificateKeyFilePassword=`, tokens) is masked too. Never raises:
    what cannot be redacted is replaced whole by `***`.
    """
    try:
        return _mask_query(_redact_whole(value))
    except Exception:  # fail closed: a text that could not be redacted is not shown
        return MASK


def redact_uri(text: str) -> str:
    """Return `text` with every password of a connection string replaced by `***`.

    Works on a bare connection string and on any message that contains some: every
    `scheme://user:password@` is masked up to the last `@` before the next URI of the
    text, so a password holding `@`, `/`, `?`, `#` or spaces is masked whole; in free
    text this may mask more than the password (never less). A text without whitespace
    that starts with `scheme://` is taken as one connection string (see
    `redact_connection_string`). A `user:password@host` word without a scheme is masked
    too; a password with whitespace in a string without `scheme://` is only found by
    `redact_connection_string`, which knows the whole text is one connection string.
    Never raises: what cannot be redacted is replaced whole by `***`.
    """
    try:
        if _SCHEME.match(text) and _TOKEN.fullmatch(text):
            return _mask_query(_redact_whole(text))
        return _mask_query(_redact_text(text))
    except Exception:  # fail closed: a text that could not be redacted is not shown
        return MASK


def _mask_query(text: str) -> str:
    return _QUERY_SECRET.sub(lambda m: f"{m['key']}{MASK}", text)


def _mask_userinfo(userinfo: str) -> str:
    """`user:***`, or `***` when there is no user name apart from the secret."""
    user, colon, _ = userinfo.partition(":")
    if not colon or _NOT_IN_A_SHOWN_USER.search(user):
        return MASK
    return f"{user}:{MASK}"


def _redact_whole(value: str) -> str:
    scheme = _SCHEME.match(value)
    head = scheme.group() if scheme else ""
    rest = value[len(head) :]
    at = rest.rfind("@")
    if at < 0:
        return value
    userinfo = rest[:at]
    if scheme and ":" not in userinfo:
        return value  # a user name alone (or `file:///dir@x`): nothing secret
    return f"{head}{_mask_userinfo(userinfo)}@{rest[at + 1 :]}"


def _redact_words(text: str) -> str:
    """Mask the `user:password@host` words of `text`, a part of a text outside any URI."""

    def mask(match: re.Match[str]) -> str:
        word = match.group()
        userinfo, at, host = word.rpartition("@")
        if not at or ":" not in userinfo:
            return word
        opening = userinfo[: len(userinfo) - len(userinfo.lstrip(_OPENING))]  # `'user:pw@h'`
        return f"{opening}{_mask_userinfo(userinfo[len(opening) :])}@{host}"

    return _TOKEN.sub(mask, text)


def _userinfo_end(text: str, start: int, end: int) -> int:
    """Where the userinfo of the URI whose authority spans `text[start:end]` ends, or -1."""
    if start == end or text[start] == "/" or text[start].isspace():
        return -1  # a path (`file:///dir`) or nothing (`mongomock:// for ...`): no userinfo
    at = text.rfind("@", start, end)
    return at if at >= 0 and ":" in text[start:at] else -1


def _redact_text(text: str) -> str:
    # Each URI runs from its scheme to the next scheme that starts another URI; its
    # userinfo ends at the last `@` in that stretch.
    starts = [
        match
        for match in _SCHEME.finditer(text)
        if match.start() == 0
        or text[match.start() - 1].isspace()
        or text[match.start() - 1] in _URI_STARTERS
    ]
    if not starts:
        return _redact_words(text)
    pieces = [_redact_words(text[: starts[0].start()])]
    index = 0
    while index < len(starts):
        scheme = starts[index]
        index += 1
        end = starts[index].start() if index < len(starts) else len(text)
        # A stretch without `@` followed by one whose userinfo has no `:` is one URI
        # whose password holds ` x://`: join them, so that the password is masked.
        while index < len(starts) and "@" not in text[scheme.end() : end]:
            following = starts[index]
            after = starts[index + 1].start() if index + 1 < len(starts) else len(text)
            at = text.rfind("@", following.end(), after)
            if at < 0 or ":" in text[following.end() : at]:
                break
            index += 1
            end = after
        at = _userinfo_end(text, scheme.end(), end)
        if at < 0:
            pieces.append(scheme.group() + _redact_words(text[scheme.end() : end]))
        else:
            userinfo = text[scheme.end() : at]
            pieces.append(f"{scheme.group()}{_mask_userinfo(userinfo)}{text[at:end]}")
    return "".join(pieces)
