"""The one-writer lock of a run directory (``.lock``: the holder's pid, host and start time), and
the one-line errors a run directory raises. Locking uses ``fcntl.flock`` (Linux, macOS)."""

from __future__ import annotations

import atexit
import errno
import fcntl
import json
import os
import shutil
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from forethought import serialization

LOCK_FILE = ".lock"


class RunDirError(ValueError):
    """A run directory cannot be used: one line naming the path and why."""


class RunDirInUse(RunDirError):
    """Another process holds the run directory's lock (:attr:`holder`: its pid, host, start time)."""

    def __init__(self, message: str, holder: dict[str, Any]) -> None:
        super().__init__(message)
        self.holder = holder


def describe_os_error(err: OSError) -> str:
    """What went wrong, in words (``no space left on device``, ``permission denied``...)."""
    reasons = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
               errno.EACCES: "permission denied", errno.EPERM: "permission denied",
               errno.EROFS: "read-only file system"}
    return reasons.get(err.errno, err.strerror or str(err))


@contextmanager
def os_errors(path: Path, doing: str = "write the run directory") -> Iterator[None]:
    """Turn an OSError inside the block into a one-line :class:`RunDirError` naming ``path`` (or
    the file the error names)."""
    try:
        yield
    except RunDirError:
        raise
    except OSError as err:
        where = err.filename or path
        raise RunDirError(f"cannot {doing} {path}: {describe_os_error(err)} ({where})" if str(where) != str(path)
                          else f"cannot {doing} {path}: {describe_os_error(err)}") from err


class RunLock:
    """The one-writer lock of a run directory: ``path/.lock``, flock-ed while held and holding
    the holder's pid, host and start time. The kernel releases it when the process ends however
    it ends, so a lock file left by a dead process is simply taken over (:attr:`previous` says
    who held it last); it is removed on :meth:`release`, on leaving a ``with`` block, and at exit.

    Raises:
        RunDirInUse: another process (or another RunLock in this one) holds it.
        RunDirError: the folder cannot be created or the lock written.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.file = self.path / LOCK_FILE
        self.previous: dict[str, Any] | None = None
        self._fd: int | None = None
        made = not self.path.exists()
        try:
            with os_errors(self.path, "lock the run directory"):
                self.path.mkdir(parents=True, exist_ok=True)
                self._fd = self._acquire()
        except BaseException:
            if made:
                shutil.rmtree(self.path, ignore_errors=True)
            raise
        atexit.register(self.release)

    def _acquire(self) -> int:
        while True:
            fd = os.open(self.file, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                who = (f"process {holder['pid']} on {holder.get('host', '?')}" if "pid" in holder
                       else "another process")
                raise RunDirInUse(f"run directory {self.path} is in use by {who} (lock {self.file}); "
                                  "wait for it to finish or stop it", holder) from None
            except BaseException:
                os.close(fd)
                raise
            try:  # the last holder may have removed the file between our open and our lock
                current = os.stat(self.file).st_ino
            except FileNotFoundError:
                current = None
            if current == os.fstat(fd).st_ino:
                break
            os.close(fd)
        try:
            self.previous = _read_holder(fd) or None
            record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            serialization.write_all(fd, json.dumps(record).encode())
        except BaseException:
            self.file.unlink(missing_ok=True)  # ours while we hold it: no half-written lock stays
            os.close(fd)
            raise
        return fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Remove the lock file and release the lock (idempotent)."""
        if self._fd is None:
            return
        try:
            if os.stat(self.file).st_ino == os.fstat(self._fd).st_ino:
                self.file.unlink()
        except OSError:
            pass  # already gone, or the folder was removed: nothing left to release but the fd
        os.close(self._fd)
        self._fd = None
        atexit.unregister(self.release)

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        holder = json.loads(os.read(fd, 4096).decode("utf-8"))
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError):
        return {}


def in_use(path: str | os.PathLike) -> dict[str, Any] | None:
    """Who holds the lock of the run directory ``path`` (its pid, host, start time), or None."""
    try:
        fd = os.open(Path(path) / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_holder(fd)
    finally:
        os.close(fd)
    return None
