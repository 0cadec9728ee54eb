"""The relay's partitioner must put a key where every other Kafka producer puts it."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from services.runtime.outbox import key_partition, murmur2


def _signed(h: int) -> int:
    return h - (1 << 32) if h >= 1 << 31 else h


def test_murmur2_gives_the_java_clients_hashes() -> None:
    # Kafka's own test vectors (clients UtilsTest.testMurmur2), as Java's signed ints
    cases = {
        b"21": -973932308,
        b"foobar": -790332482,
        b"a-little-bit-long-string": -985981536,
        b"a-little-bit-longer-string": -1486304829,
        b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
        b"abc": 479470107,
    }
    for key, expected in cases.items():
        assert _signed(murmur2(key)) == expected, key


def test_murmur2_equals_aiokafkas_on_every_length_and_the_partition_with_it() -> None:
    rng = random.Random(7)
    parts = list(range(12))
    for length in range(0, 70):
        for _ in range(40):
            key = rng.randbytes(length)
            assert murmur2(key) == aiokafka_murmur2(key), key
            assert key_partition(key, parts) == DefaultPartitioner()(key, parts, parts)
