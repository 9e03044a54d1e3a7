"""The KV router's index against a brute-force reference, its event sequence rules (lost and
reordered events make a worker stale until its snapshot), workers leaving, kv-approx's TTL, and
the worker's prefix cache whose events feed it."""

from __future__ import annotations

import random

from drivetrain.runtime.frontend.kv_index import ApproxIndex, KvIndex
from drivetrain.runtime.kv.blocks import block_hashes
from drivetrain.runtime.kv.cache import PrefixCache


def brute_overlap(cached: set[int], hashes: list[int]) -> int:
    n = 0
    for h in hashes:
        if h not in cached:
            break
        n += 1
    return n


def prompts(rng: random.Random, count: int) -> list[list[int]]:
    """Prompts sharing prefixes: a few system prompts, each continued several ways."""
    systems = [[rng.randrange(50) for _ in range(rng.randrange(0, 40))] for _ in range(3)]
    out = []
    for _ in range(count):
        base = list(rng.choice(systems))
        out.append(base + [rng.randrange(50) for _ in range(rng.randrange(1, 40))])
    return out


def test_chained_hashes_name_whole_prefixes() -> None:
    a = block_hashes([1, 2, 3, 4, 5, 6, 7], 2)
    assert len(a) == 3  # the partial last block is not hashed
    assert block_hashes([1, 2, 3, 4, 9, 9], 2)[:2] == a[:2]
    # The same block after a different prefix is a different block.
    assert block_hashes([0, 0, 3, 4], 2)[1] != a[1]
    assert block_hashes([1, 2, 3, 4, 5, 6, 7], 2, limit=1) == a[:1]


def test_index_matches_brute_force_on_random_event_sequences() -> None:
    for seed in range(20):
        rng = random.Random(seed)
        workers = {f"w{i}": PrefixCache(num_blocks=rng.randrange(4, 30)) for i in range(5)}
        index = KvIndex()
        for name, cache in workers.items():
            cache.listeners.append(
                lambda event, name=name, index=index: index.apply(name, list(event))
            )
            index.apply(name, list(cache.snapshot()))
        pool = prompts(rng, 40)
        for _step in range(300):
            name = rng.choice(list(workers))
            hashes = block_hashes(rng.choice(pool), 4)
            workers[name].match(hashes)
            workers[name].store(hashes)
            probe = block_hashes(rng.choice(pool), 4)
            got = index.overlaps(probe, list(workers))
            want = {
                n: brute_overlap(set(c._blocks), probe)
                for n, c in workers.items()
                if brute_overlap(set(c._blocks), probe)
            }
            assert got == want, (seed, _step)
        for name, cache in workers.items():
            assert index.blocks(name) == frozenset(cache._blocks)


def test_overlap_stops_at_the_first_missing_block() -> None:
    index = KvIndex()
    index.apply("a", [0, "a", [1, 3]])  # holds blocks 1 and 3 of 1, 2, 3
    index.apply("b", [0, "a", [1, 2, 3]])
    assert index.overlaps([1, 2, 3], ["a", "b"]) == {"a": 1, "b": 3}
    assert index.overlaps([1, 2, 3], ["a"]) == {"a": 1}  # only the candidates asked about
    assert index.overlaps([7], ["a", "b"]) == {}


def test_a_lost_event_makes_the_worker_stale_until_its_snapshot() -> None:
    index = KvIndex()
    asked: list[str] = []
    index.on_stale = asked.append
    cache = PrefixCache(10)
    events: list[list[object]] = []
    cache.listeners.append(lambda e: events.append(list(e)))
    index.apply("w", list(cache.snapshot()))
    cache.store([1, 2])
    cache.store([3])
    cache.store([4])
    index.apply("w", events[0])
    # events[1] is lost: the next one does not follow, so what "w" holds is unknown now
    index.apply("w", events[2])
    assert asked == ["w"]
    assert index.blocks("w") == frozenset()
    assert index.overlaps([1], ["w"]) == {}
    cache.store([5])
    index.apply("w", events[3])  # still stale: ignored until the snapshot
    assert index.blocks("w") == frozenset()
    index.apply("w", list(cache.snapshot()))  # the worker's answer to the resync
    assert index.blocks("w") == frozenset({1, 2, 3, 4, 5})
    cache.store([6])
    index.apply("w", events[4])
    assert index.blocks("w") == frozenset({1, 2, 3, 4, 5, 6})
    assert index.resyncs == 1


def test_reordered_events_are_refused_then_rebuilt() -> None:
    index = KvIndex()
    asked: list[str] = []
    index.on_stale = asked.append
    cache = PrefixCache(2)
    events: list[list[object]] = []
    cache.listeners.append(lambda e: events.append(list(e)))
    index.apply("w", list(cache.snapshot()))
    cache.store([1, 2])
    cache.store([3])  # evicts 1: a stored event then a removed one
    index.apply("w", events[1])  # before events[0]
    assert asked == ["w"]
    index.apply("w", events[0])
    index.apply("w", events[2])
    assert index.blocks("w") == frozenset()
    index.apply("w", list(cache.snapshot()))
    assert index.blocks("w") == frozenset({2, 3})


def test_a_worker_leaving_is_dropped_from_every_block() -> None:
    index = KvIndex()
    index.apply("a", [0, "a", [1, 2]])
    index.apply("b", [0, "a", [1]])
    index.drop("a")
    assert index.overlaps([1, 2], ["a", "b"]) == {"b": 1}
    assert index.workers() == ["b"]
    index.apply("b", None)  # its connection was lost
    assert index.overlaps([1, 2], ["a", "b"]) == {}
    assert index._holders == {}


def test_approx_index_forgets_after_its_ttl() -> None:
    index = ApproxIndex(ttl=10.0)
    index.record("a", [1, 2, 3], now=0.0)
    index.record("b", [1], now=5.0)
    assert index.overlaps([1, 2, 3], ["a", "b"]) == {"a": 3, "b": 1}
    index.record("a", [1], now=8.0)  # block 1 seen again on "a": kept past the first TTL
    index.expire(12.0)
    assert index.overlaps([1, 2, 3], ["a", "b"]) == {"a": 1, "b": 1}
    index.expire(18.0)
    assert index.overlaps([1, 2, 3], ["a", "b"]) == {}
    assert index._holders == {} and index._expiry == {}


def test_prefix_cache_is_a_bounded_lru_with_events() -> None:
    cache = PrefixCache(3)
    events: list[tuple[int, str, list[int]]] = []
    cache.listeners.append(events.append)
    cache.store([1, 2, 3])
    assert cache.match([1, 2, 9]) == 2  # 1 and 2 now the most recent
    cache.store([4])  # evicts 3, the least recently used
    assert events == [(1, "s", [1, 2, 3]), (2, "s", [4]), (3, "r", [3])]
    assert cache.snapshot() == (3, "a", [1, 2, 4])
    assert cache.hits == 2 and cache.lookups == 3
