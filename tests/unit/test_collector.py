"""What a worker holds once it is up is frozen out of the cyclic collector's walks; what it
makes later is collected as before."""

from __future__ import annotations

import gc
from typing import Any

from services.runtime.collector import freeze_startup


class _Node:
    def __init__(self) -> None:
        self.other: Any = None


def test_startup_objects_leave_the_collectors_walks_and_later_cycles_are_still_freed() -> None:
    held = [{"n": i, "xs": [i]} for i in range(50_000)]  # a worker's modules, schemas, clients
    try:
        freeze_startup()
        assert gc.get_freeze_count() >= len(held)
        tracked = {id(o) for o in gc.get_objects()}
        assert id(held[0]) not in tracked and id(held[-1]["xs"]) not in tracked
        a, b = _Node(), _Node()  # a cycle made after: garbage the collector still finds
        a.other, b.other = b, a
        del a, b
        assert gc.collect() >= 2
    finally:
        gc.unfreeze()
