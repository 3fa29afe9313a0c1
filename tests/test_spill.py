"""Spill files: what a long run keeps on disk comes back bit for bit, and a Ctrl-C that lands
while a block is written stays a Ctrl-C."""

from __future__ import annotations

import signal

import numpy as np

from adaptive_argm.core.signal import SOURCE_FRAMES, Store, gather


def test_a_spilled_signal_comes_back_bit_for_bit(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3 * SOURCE_FRAMES + 123)).astype(np.float32)
    spill = Store(tmp_path).keep((x[:, i:i + 5000] for i in range(0, x.shape[1], 5000)), 2, 44100)
    assert spill.frames == x.shape[1]
    np.testing.assert_array_equal(gather(spill.blocks(), 2, spill.frames), x)
    np.testing.assert_array_equal(gather(spill.blocks(777), 2, spill.frames), x)


def test_an_interrupt_while_a_block_is_spilled_stays_an_interrupt(tmp_path):
    # numpy's tofile turned a KeyboardInterrupt that landed in it into a TypeError (about 1 in
    # 300 here), which a batch recorded as a failed file instead of stopping.
    block = np.zeros((2, 65536), dtype=np.float32)
    raised: set[str] = set()

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, interrupt)
    try:
        for i in range(3000):
            try:
                try:
                    signal.setitimer(signal.ITIMER_REAL, 0.0001 * (i % 7 + 1))
                    Store(tmp_path).keep(iter([block, block]), 2, 44100)
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
            except KeyboardInterrupt:
                raised.add("KeyboardInterrupt")
            except Exception as exc:  # noqa: BLE001  (what the test looks for)
                raised.add(f"{type(exc).__name__}: {exc}")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert raised <= {"KeyboardInterrupt"}, raised
