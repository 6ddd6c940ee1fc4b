"""The lock a recording process holds on its journal: an exclusive `flock` on `<journal>.lock`.

It is the lock filelock's `FileLock` takes on POSIX systems (so processes running
an older evalstore see it too): released when its descriptor closes, so a killed
process leaves no stale lock behind. Taken here with `fcntl` directly, because
importing filelock cost every recording pytest session about 9 ms; on Windows,
which has no `flock`, filelock takes it.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import Any

_HELD = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES})
"""What `flock` answers for a lock another holder has (EACCES on some file systems)."""


class LockFile:
    """A non-blocking, exclusive lock on the file `lock_file` (created when missing).

    Args:
        lock_file: the lock file's path.
    """

    def __init__(self, lock_file: str) -> None:
        self.lock_file = lock_file
        self._fd: int | None = None
        self._owner: int | None = None
        """The process that took the lock (a forked child inherits the descriptor, not the lock)."""
        self._portable: Any = None  # filelock's FileLock, off POSIX

    def try_acquire(self) -> bool:
        """Take the lock if no one holds it; False when another holder has it."""
        if sys.platform == "win32":  # pragma: no cover - CI runs on Linux
            from filelock import FileLock, Timeout

            self._portable = FileLock(self.lock_file)
            try:
                self._portable.acquire(timeout=0)
            except Timeout:
                return False
            return True
        import fcntl

        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in _HELD:
                return False
            raise
        except BaseException:
            os.close(fd)
            raise
        self._fd, self._owner = fd, os.getpid()
        return True

    def acquire(self) -> None:
        """Take the lock now.

        Raises:
            TimeoutError: another holder has it (as filelock's `Timeout` with no wait).
        """
        if not self.try_acquire():
            raise TimeoutError(f"the lock {self.lock_file} is held by another process")

    def release(self) -> None:
        """Give the lock back (nothing happens when it is not held)."""
        if self._portable is not None:  # pragma: no cover - CI runs on Linux
            self._portable.release()
            self._portable = None
        if self._fd is not None:
            fd, self._fd = self._fd, None
            if self._owner == os.getpid():
                # Unlocked explicitly: a child forked meanwhile (a server a test started)
                # shares the descriptor, and closing ours alone would leave it locked.
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_UN)
            # In a forked child, closing its copy leaves the parent's lock as it is.
            os.close(fd)
