"""Grid-point locks: one holder at a time, stale locks (a killed owner) taken over, a held lock
kept fresh and removed after."""

import json
import os
import subprocess
import sys
import threading
import time

from mmu_bench.core import locks


def dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def write_lock(path, host, pid, age=0.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"host": host, "pid": pid, "started": time.time() - age}))
    os.utime(path, (time.time() - age, time.time() - age))


def test_one_holder_at_a_time_and_the_lock_goes_with_the_block(tmp_path):
    path = locks.lock_path(tmp_path, "key1")
    assert locks.acquire(path)
    owner = json.loads(path.read_text())
    assert owner["pid"] == os.getpid()
    assert not locks.acquire(path)  # held by a live process (this one)
    with locks.held(path):
        assert path.exists()
    assert not path.exists() and locks.acquire(path)


def test_a_lock_of_a_killed_process_on_this_host_is_taken_over(tmp_path):
    import socket

    path = locks.lock_path(tmp_path, "key2")
    write_lock(path, socket.gethostname(), dead_pid())
    assert locks.stale(path) and locks.acquire(path)
    assert json.loads(path.read_text())["pid"] == os.getpid()


def test_another_hosts_lock_is_stale_only_when_not_touched_for_long(tmp_path):
    path = locks.lock_path(tmp_path, "key3")
    write_lock(path, "some-other-node", 1, age=5.0)
    assert not locks.stale(path, stale_after=60) and not locks.acquire(path, stale_after=60)
    write_lock(path, "some-other-node", 1, age=120.0)
    assert locks.stale(path, stale_after=60) and locks.acquire(path, stale_after=60)


def test_the_heartbeat_keeps_a_held_lock_fresh(tmp_path):
    path = locks.lock_path(tmp_path, "key4")
    assert locks.acquire(path)
    os.utime(path, (time.time() - 1000, time.time() - 1000))
    with locks.held(path, heartbeat=0.05):
        time.sleep(0.3)
        assert time.time() - path.stat().st_mtime < 5 and not locks.stale(path, stale_after=60)


def test_of_many_contenders_for_a_stale_lock_one_wins(tmp_path):
    path = locks.lock_path(tmp_path, "key5")
    for _ in range(20):
        write_lock(path, "some-other-node", 1, age=1000.0)
        wins = []
        start = threading.Barrier(8)

        def contend(start=start, wins=wins):
            start.wait()
            wins.append(locks.acquire(path, stale_after=60))

        threads = [threading.Thread(target=contend) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(wins) == 1, wins
        path.unlink()
