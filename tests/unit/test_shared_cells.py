"""The cells the workers share (argoproxy/shared_cells.py): lock() keeps out other processes and other threads."""

from __future__ import annotations

import threading
import time

from argoproxy.shared_cells import SharedCells


def test_the_lock_keeps_out_another_thread_of_the_same_process(tmp_path):
    """An flock belongs to the open file, shared by a process's threads: a gthread worker's threads were inside
    together, and a read-modify-write of one lost the other's."""
    cells = SharedCells("t.cells", 2, str(tmp_path))
    inside, most = [0], [0]

    def count() -> None:
        for _ in range(200):
            with cells.lock() as c:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
                value = c[0]
                time.sleep(0)  # let another thread run here, as the interpreter may at any point
                c[0] = value + 1
                inside[0] -= 1

    threads = [threading.Thread(target=count) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (cells.cells[0], most[0]) == (800, 1)
