"""A worker keeps the memory it frees: a block of the same size allocated again is not faulted
in from the kernel a second time (glibc only)."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

from adaptive_argm.core import heap

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# In a fresh interpreter, so the test process keeps glibc's defaults: the page faults of
# allocating, touching and freeing a 64 MiB block a second time, under glibc's defaults, while
# memory is kept (after a nested block ended), after it is given back, and once a worker keeps it
# for good (a block ending then gives nothing back).
PROBE = """
import json, resource
import numpy as np
from adaptive_argm.core import heap

def refault():
    for _ in range(2):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        block = np.ones(16 * 1024 * 1024, np.float32)
        del block
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

out = {"default": refault()}
with heap.freed_memory_kept() as kept:
    with heap.freed_memory_kept():
        pass
    out["kept"], out["applied"] = refault(), kept  # the inner block ending gave nothing back
out["given_back"] = refault()
heap.keep_freed_memory()
with heap.freed_memory_kept():
    pass
out["for_good"] = refault()
print(json.dumps(out))
"""


def _probe(code: str, env: dict | None = None) -> dict:
    """What a probe printed as JSON, run in a fresh interpreter."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return json.loads(done.stdout)


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_kept_memory_is_not_faulted_in_again_until_the_last_block_ends():
    faults = _probe(PROBE)
    assert faults["applied"] is True
    # The block is 16384 pages (32 with transparent huge pages); kept, it is reused as it is.
    assert faults["default"] >= 32
    assert faults["kept"] <= faults["default"] / 8
    assert faults["given_back"] >= faults["default"] / 2
    assert faults["for_good"] <= faults["default"] / 8


# A chain's scratch freed in a thread's own malloc arena stays in the process's RSS until it is
# given back; while memory is kept on purpose, giving back does nothing.
GIVE_BACK_PROBE = """
import json, os, threading
import numpy as np
from adaptive_argm.core import heap

PAGE = os.sysconf("SC_PAGE_SIZE")
held = []

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2**20

def scratch():  # 96 KiB blocks (under the mmap threshold), every 40th kept: the arena cannot shrink
    blocks = [np.ones(12 * 1024, np.float64) for _ in range(4000)]
    held.extend(blocks[1::40])

def run_scratch():
    t = threading.Thread(target=scratch)
    t.start()
    t.join()

out = {"before": rss_mb()}
run_scratch()
out["freed"] = rss_mb()
heap.give_back_freed()
out["given_back"] = rss_mb()
with heap.freed_memory_kept():
    run_scratch()
    out["kept_freed"] = rss_mb()
    heap.give_back_freed()
    out["kept_after"] = rss_mb()
print(json.dumps(out))
"""


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_freed_scratch_in_a_thread_arena_is_given_back_unless_memory_is_kept():
    mb = _probe(GIVE_BACK_PROBE)
    assert mb["freed"] - mb["before"] > 250  # 375 MiB of scratch, 9 MiB of it still held
    assert mb["given_back"] - mb["before"] < 60
    assert mb["kept_after"] > mb["kept_freed"] - 20


@pytest.mark.skipif(GLIBC, reason="only where there is no glibc")
def test_without_glibc_nothing_is_applied():
    assert heap.keep_freed_memory() is False


# numpy's huge-page switch, in fresh interpreters: off once the process asks (as the command and
# its workers do), left alone where the user set numpy's own variable.
HUGE_PROBE = """
import json
import numpy as np
from adaptive_argm.core import heap

core = getattr(np, "_core", None) or np.core
before = bool(core.multiarray._get_madvise_hugepage())
switched = heap.no_huge_pages()
print(json.dumps({"before": before, "switched": switched, "after": bool(core.multiarray._get_madvise_hugepage())}))
"""


def _huge_probe(env_value: str | None) -> dict:
    import os

    env = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    if env_value is not None:
        env["NUMPY_MADVISE_HUGEPAGE"] = env_value
    return _probe(HUGE_PROBE, env)


@pytest.mark.skipif(platform.system() != "Linux", reason="numpy uses madvise huge pages on Linux only")
def test_numpy_huge_pages_are_switched_off_unless_the_user_chose():
    default = _huge_probe(None)
    assert default == {"before": True, "switched": True, "after": False}
    chosen = _huge_probe("1")  # the user's choice stands
    assert chosen == {"before": True, "switched": False, "after": True}
