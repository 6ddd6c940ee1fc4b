"""`file:///absolute/dir` names one directory, and anything else is one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalstore import ConfigurationError, MongoDBClient
from evalstore.storage.localstore import store_path

EXPECTED = "expected file:///absolute/path/to/dir"


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("file:///tmp/history", "/tmp/history"),
        ("file:///tmp/a/../history/", "/tmp/history"),
        ("file:///tmp/with%20space%23hash%3Fmark", "/tmp/with space#hash?mark"),
        ("file:///tmp/semi;colon", "/tmp/semi;colon"),
        ("file:///tmp/caf%C3%A9", "/tmp/café"),
    ],
)
def test_a_local_store_url_names_its_directory(url: str, path: str) -> None:
    assert store_path(url) == Path(path)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file://relative/dir", f"invalid local store 'file://relative/dir': {EXPECTED}"),
        (
            "file:///",
            "invalid local store 'file:///': the root directory cannot be a local store "
            f"(it would write into /); {EXPECTED}",
        ),
        (
            "file:///tmp/..",
            "invalid local store 'file:///tmp/..': the root directory cannot be a local store "
            f"(it would write into /); {EXPECTED}",
        ),
        (
            "file:////",
            "invalid local store 'file:////': the root directory cannot be a local store "
            f"(it would write into /); {EXPECTED}",
        ),
        (
            "file:///dir#frag",
            "invalid local store 'file:///dir#frag': a # would end the path there "
            f"(write it as %23); {EXPECTED}",
        ),
        (
            "file:///dir?x=1",
            "invalid local store 'file:///dir?x=1': a ? would end the path there "
            f"(write it as %3F); {EXPECTED}",
        ),
        (
            "file:///a%00b",
            "invalid local store 'file:///a%00b': it holds a NUL byte (%00), which no file "
            f"name can; {EXPECTED}",
        ),
        (
            "file:///a%FFb",
            f"invalid local store 'file:///a%FFb': its %-escapes are not UTF-8; {EXPECTED}",
        ),
        (
            "file:///a\nb",
            f"invalid local store 'file:///a\\nb': it holds a control character; {EXPECTED}",
        ),
        ("file://[/x", f"invalid local store 'file://[/x': {EXPECTED}"),
        ("file://user:S3c#r@t@/x", f"invalid local store 'file://user:***@/x': {EXPECTED}"),
    ],
)
def test_a_bad_local_store_url_is_one_clear_error(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as error:
        store_path(url)
    assert str(error.value) == message
    with pytest.raises(ConfigurationError) as error:
        MongoDBClient(url)
    assert str(error.value) == message


def test_a_file_url_without_slashes_is_refused() -> None:
    with pytest.raises(ConfigurationError) as error:
        store_path("file:relative")
    assert str(error.value) == f"invalid local store 'file:relative': {EXPECTED}"
