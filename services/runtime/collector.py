"""Keeping Python's cyclic garbage collector off objects that live on: pausing it around
work that builds many of them (a statement's movements, a billing run's invoices and
events), and freezing what a worker holds once it is up.

The collector runs whenever allocations outnumber deallocations by a threshold, and every so
often it walks every tracked object of the older generations. While hundreds of thousands of
new objects pile up and stay, each of those walks is longer than the last, and none frees
anything: a third of a GPC file's parse, a quarter of a billing run's CPU
(docs/performance.md#finding-16). The work holds no reference cycles
of its own; plain reference counting frees what it drops, and the collector runs again as
before once the work is done, also on error.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def freeze_startup() -> None:
    """Move every object alive now out of the collector's reach, for good: a worker's
    modules, schemas, pools and clients, once it is up. Every full collection walked all of
    them and freed next to nothing, with the worker's event loop stopped: each a stall of
    every event in flight (docs/performance.md#finding-19). Objects made later are
    collected as before."""
    gc.collect()
    gc.freeze()
