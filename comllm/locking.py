"""One run per output folder: an exclusive lock that names its holder (README, "What is safe").

Every training command and the pipeline hold :class:`FolderLock` on their
output folder while they run. The lock is ``fcntl.flock`` on ``FOLDER/.comllm.lock``,
and the file holds the holder's pid and command line, so a second run into the
same folder stops at once with one line naming the holder. The kernel drops a
``flock`` when its process dies, however it dies (SIGKILL included): the
next run takes the lock over and says whose stale lock it took. A clean exit
removes the lock file, and the folder too if the lock created it and the run
left nothing in it (a run refused for a bad option leaves no trace).

:func:`lock_folder` is what commands use: it is re-entrant within one process
(the command line takes the lock before its slow imports, the training
function takes it again), and a no-op in the ranks other than 0 of a launcher.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

from comllm.errors import ComllmError

LOCK_FILE = ".comllm.lock"
#: folders this process holds through :func:`lock_folder` (resolved path -> lock, depth)
_HELD: dict[Path, list[Any]] = {}


class LockError(ComllmError):
    """Another process holds the folder (the message names its pid)."""


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_main_process() -> bool:
    """False in the ranks other than 0 of a ``torchrun`` / ``accelerate launch`` run (rank 0 holds the lock)."""
    return int(os.environ.get("RANK", "0") or 0) == 0


def _read_holder(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text()[:4096])
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


class FolderLock:
    """Exclusive lock on ``folder`` (created if missing); use as a context manager.

    ``what`` names the command in the refusal, ``log`` receives the one-line
    notice when a stale lock (its pid not running) is taken over.
    """

    def __init__(self, folder: str | Path, what: str = "run", log: Callable[[str], None] | None = None) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self.what = what
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        self._fd: int | None = None
        self._created = False

    def acquire(self) -> "FolderLock":
        if self.folder.exists() and not self.folder.is_dir():
            raise LockError(f"output folder '{self.folder}' is a file, not a folder")
        try:
            self._created = not self.folder.exists()
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise LockError(f"cannot create output folder '{self.folder}': {err.strerror}") from None
        for _ in range(20):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:  # a finishing run removed its empty folder meanwhile
                self.folder.mkdir(parents=True, exist_ok=True)
                continue
            except OSError as err:
                raise LockError(f"cannot write the lock file '{self.path}': {err.strerror}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                os.close(fd)
                if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise self._busy() from None
                raise LockError(f"cannot lock '{self.path}': {err.strerror}") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the holder removed the file between our open and our lock: try the new one
                os.close(fd)
                continue
            previous = _read_holder(self.path)
            try:
                old = int(previous.get("pid", 0) or 0)
            except (TypeError, ValueError):
                old = 0
            if old and old != os.getpid():
                state = "not running" if not pid_alive(old) else "its lock released"
                self.log(f"'{self.folder}': took over the stale lock of pid {old} ({state}; it did not finish)")
            holder = {"pid": os.getpid(), "command": " ".join(sys.argv)[:500], "what": self.what,
                      "since": time.strftime("%Y-%m-%dT%H:%M:%S")}  # fmt: skip
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
            self._fd = fd
            return self
        raise LockError(f"cannot lock '{self.path}': it keeps being replaced")

    def _busy(self) -> LockError:
        holder = _read_holder(self.path)
        pid = str(holder.get("pid", "unknown"))[:20]
        cmd = holder.get("command")
        who = f"pid {pid}" + (f": {str(cmd)[:120]}" if cmd else "")
        return LockError(
            f"output folder '{self.folder}' is in use by another {str(holder.get('what') or self.what)[:40]} ({who}); "
            f"wait for it to finish or choose another folder"
        )

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still holding it: a waiter then retries on a new file
        finally:
            os.close(self._fd)
            self._fd = None
        if self._created:
            try:
                self.folder.rmdir()  # only if empty: the run wrote nothing
            except OSError:
                pass

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


class _Held:
    """A :func:`lock_folder` block: takes the folder's lock, or nests in this process's hold of it."""

    def __init__(self, folder: Path, what: str, log: Callable[[str], None] | None) -> None:
        self.key = folder.resolve()
        self.folder, self.what, self.log = folder, what, log

    def __enter__(self) -> "_Held":
        if not is_main_process():
            return self
        if self.key in _HELD:
            _HELD[self.key][1] += 1
        else:
            _HELD[self.key] = [FolderLock(self.folder, self.what, self.log).acquire(), 1]
        return self

    def __exit__(self, *exc: Any) -> None:
        entry = _HELD.get(self.key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            del _HELD[self.key]
            entry[0].release()


def lock_folder(folder: str | Path, what: str = "run", log: Callable[[str], None] | None = None) -> Any:
    """A context manager holding ``folder``'s :class:`FolderLock` (re-entrant in one process; a no-op in ranks > 0)."""
    return _Held(Path(folder), what, log)
