"""Test run ids take their random suffix from blocks of `os.urandom`, never repeated.

Reading the random bytes a block at a time (one system call per 1,024 tests, not
one per test) must keep what `secrets.token_hex` gave: fresh bytes for every id,
in every thread, and in a forked child too.
"""

from __future__ import annotations

import os
import re
import threading

from evalstore import ids
from evalstore.ids import new_test_run_id


def test_each_id_has_eight_fresh_hex_digits() -> None:
    suffixes = [new_test_run_id("run", "tests/a.py::t[1]").rsplit("/", 1)[1] for _ in range(300)]
    assert all(re.fullmatch(r"[0-9a-f]{8}", suffix) for suffix in suffixes)
    # 300 draws of 32 bits: a repeat has a probability of about 1e-5.
    assert len(set(suffixes)) == len(suffixes)
    assert new_test_run_id("run", "tests/a.py::t[1]").startswith("run/tests-a.py-t-1/")


def test_no_bytes_are_handed_out_twice() -> None:
    source = ids._RandomBytes()
    # 20,000 draws of 64 bits: a repeat by chance has a probability of about 1e-11.
    chunks = [source.take(8) for _ in range(20_000)]
    assert len(set(chunks)) == len(chunks)


def test_blocks_are_used_up_in_order_and_then_renewed() -> None:
    source = ids._RandomBytes()
    taken = b"".join(source.take(4) for _ in range(ids._RandomBytes.BLOCK // 4 + 3))
    assert len(taken) == ids._RandomBytes.BLOCK + 12
    # Four-byte slices of two different blocks: none repeats.
    chunks = [taken[i : i + 4] for i in range(0, len(taken), 4)]
    assert len(set(chunks)) == len(chunks)


def test_threads_never_get_the_same_bytes() -> None:
    source = ids._RandomBytes()
    found: list[list[bytes]] = [[] for _ in range(4)]

    def draw(into: list[bytes]) -> None:
        for _ in range(5_000):
            into.append(source.take(8))

    threads = [threading.Thread(target=draw, args=(into,)) for into in found]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [chunk for into in found for chunk in into]
    assert len(everything) == 20_000
    assert len(set(everything)) == 20_000


def test_a_forked_child_does_not_repeat_its_parents_bytes() -> None:
    source = ids._RANDOM
    source.take(4)  # a block is loaded: the child inherits it
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next bytes, to the parent
        try:
            os.write(writer, source.take(64))
        finally:
            os._exit(0)
    os.close(writer)
    child = b""
    while len(child) < 64:
        chunk = os.read(reader, 64)
        if not chunk:
            break
        child += chunk
    os.close(reader)
    os.waitpid(pid, 0)
    parent = source.take(64)  # what the parent's inherited block gives next
    assert len(child) == 64
    assert child != parent
