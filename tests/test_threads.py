"""numpy's BLAS on one thread in the command's process, in fresh interpreters: applied unless
the user chose the number of threads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

from adaptive_argm.core import threads

PROBE = """
import json
from threadpoolctl import threadpool_info
from adaptive_argm.core import threads

import numpy, scipy.linalg

def counts():
    return sorted({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})

before = counts()
applied = threads.one_blas_thread()
blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
print(json.dumps({"applied": applied, "before": before, "threads": counts(), "libraries": len(blas)}))
"""


def _probe(**chosen: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in threads.USER_VARIABLES}
    env.update(chosen)
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout)


def test_blas_runs_on_one_thread_in_numpy_and_scipy():
    found = _probe()
    assert found["applied"] is True
    assert found["libraries"] >= 1 and found["threads"] == [1]


def test_the_users_choice_of_blas_threads_stands():
    found = _probe(OPENBLAS_NUM_THREADS="2")
    assert found["applied"] is False and found["threads"] == found["before"]


def _blas_threads(_task) -> list[int]:
    from threadpoolctl import threadpool_info

    return sorted({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})


def test_pool_workers_run_blas_on_one_thread(monkeypatch):
    from adaptive_argm.core import workers

    for name in threads.USER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    found = {}
    workers.run_tasks(_blas_threads, [0, 1], 2, lambda i, f: found.setdefault(i, f.result()))
    assert found == {0: [1], 1: [1]}


def test_a_batch_in_the_callers_process_runs_blas_on_one_thread_while_it_runs(monkeypatch):
    for name in threads.USER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    before = _blas_threads(None)
    with threads.one_blas_thread_while():
        assert _blas_threads(None) == [1]
    assert _blas_threads(None) == before


def test_side_by_side_keeps_the_order_and_raises_what_an_item_raised():
    seen = set()

    def square(i: int) -> int:
        seen.add(threading.get_ident())
        if i == 7:
            raise ValueError("seven")
        return i * i

    assert threads.side_by_side(square, range(6)) == [0, 1, 4, 9, 16, 25]
    assert threads.side_by_side(square, [3]) == [9] and threads.side_by_side(square, []) == []
    assert threading.get_ident() in seen  # a single item runs in the caller's thread
    with pytest.raises(ValueError, match="seven"):
        threads.side_by_side(square, [1, 7, 2])


def test_beside_runs_a_pass_on_its_own_thread_over_the_items_in_order():
    seen = []

    def total(items):
        for x in items:
            seen.append((x, threading.current_thread().name))
        return sum(x for x, _ in seen)

    with threads.Beside(total, depth=2) as b:
        for i in range(50):
            b.put(i)
        assert b.result() == sum(range(50))
    assert [x for x, _ in seen] == list(range(50))
    assert {name for _, name in seen} == {"beside"}


def test_beside_raises_the_error_of_its_pass_and_never_blocks_the_caller():
    def fails(items):
        for x in items:
            if x == 3:
                raise ValueError("bad item")

    b = threads.Beside(fails, depth=1)
    for i in range(100):  # the failed pass drains the rest: no put waits forever
        b.put(i)
    with pytest.raises(ValueError, match="bad item"):
        b.result()


def test_beside_ends_early_when_the_caller_fails():
    got = []
    with pytest.raises(RuntimeError):
        with threads.Beside(lambda items: got.extend(items)) as b:
            b.put(1)
            raise RuntimeError("caller")
    assert not b._thread.is_alive() and got in ([], [1])
