"""One lock file per grid point, so that sweeps started at once on the same grid (on one machine
or on a cluster's shared disk) never run a point twice.

A lock is ``<output_dir>/.locks/<run key>.lock``, created atomically (``O_CREAT | O_EXCL``), holding
the owner's host, pid and start time; while the point runs, the owner touches it every
``HEARTBEAT`` seconds. A lock is stale, and is taken over, when its owner is a process of this
host that no longer exists, or when it has not been touched for ``stale_after`` seconds (an
owner on another host that was killed). A stale lock is removed under a second lock file and
recreated with ``O_EXCL``, so of two sweeps that both find it stale, one gets it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from pathlib import Path

HEARTBEAT = 30.0
STALE_AFTER = 600.0


def lock_path(output_dir: str | Path, key: str) -> Path:
    return Path(output_dir) / ".locks" / f"{key}.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


def _owner(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def stale(path: Path, stale_after: float = STALE_AFTER) -> bool:
    """Whether the lock at ``path`` was left by a killed owner."""
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return False
    owner = _owner(path)
    if owner and owner.get("host") == socket.gethostname() and not _alive(int(owner.get("pid", -1))):
        return True
    return age > stale_after


def _create(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        json.dump({"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}, fh)
    return True


def acquire(path: Path, stale_after: float = STALE_AFTER) -> bool:
    """Take the lock at ``path``: True when this process now holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if _create(path):
        return True
    if not stale(path, stale_after):
        return False
    # A stale lock is removed only under a second lock, after checking again that it is still
    # the stale one: a fresh lock (another sweep's takeover) is never removed.
    guard = path.with_name(f"{path.name}.takeover")
    if not _create(guard):
        if stale(guard, stale_after):  # a sweep killed while taking over
            with contextlib.suppress(FileNotFoundError):
                guard.unlink()
        return False
    try:
        if not stale(path, stale_after):
            return False
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return _create(path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            guard.unlink()


@contextlib.contextmanager
def held(path: Path, heartbeat: float = HEARTBEAT):
    """Keep the (acquired) lock at ``path`` fresh while the block runs; remove it after."""
    stop = threading.Event()

    def beat():
        while not stop.wait(heartbeat):
            with contextlib.suppress(FileNotFoundError):
                os.utime(path)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
