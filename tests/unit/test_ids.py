"""Ids from buffered randomness (argoproxy/ids.py): never the same twice, across threads or a fork."""

from __future__ import annotations

import os
import sys
import threading

from argoproxy.ids import new_id, random_hex


def test_ids_are_unique_across_threads_and_buffer_refills():
    got: list[str] = []
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switched as often as they can be

    def take() -> None:
        got.extend(new_id("x_") for _ in range(20_000))
    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sys.setswitchinterval(switch)
    assert len(set(got)) == len(got) == 80_000 and all(len(i) == 26 for i in got)


def test_a_forked_child_does_not_hand_out_its_parents_bytes():
    random_hex(4)  # the parent's buffer holds bytes not handed out yet
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, random_hex(16).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 64).decode() != random_hex(16)
