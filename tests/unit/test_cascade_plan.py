"""Cascade planning: the affected set, fan-in, longest-remaining-chain priorities."""

from __future__ import annotations

import pytest

from patchprop.domain.cascade import CycleInGraph, affected, plan_cascade, release_order
from patchprop.domain.models import Dependent

ROOT = "docker.io/acme/base:1"


def dep(name: str, *bases: str, auto: bool = True) -> Dependent:
    return Dependent(
        image=f"acme/{name}:1",
        project="p1",
        bases=[b if "/" in b else f"acme/{b}:1" for b in bases],
        auto_rebuild=auto,
    )


def graph(*deps: Dependent):
    by_base: dict[str, list[Dependent]] = {}
    for d in deps:
        for b in d.bases:
            by_base.setdefault(b, []).append(d)
    calls: list[str] = []

    def dependents_of(base: str):
        calls.append(base)
        return by_base.get(base, [])

    tracked = set(by_base)
    return dependents_of, tracked, calls


def test_affected_set_follows_chains_and_queries_only_bases():
    # Given base -> golden -> app-a, app-b, and base -> lone
    deps = [dep("golden", ROOT), dep("app-a", "golden"), dep("app-b", "golden"), dep("lone", ROOT)]
    dependents_of, tracked, calls = graph(*deps)
    # When the affected set of the base is computed
    found = affected(ROOT, dependents_of, tracked)
    # Then every image is in it, and leaves cost no query
    assert sorted(found) == sorted(d.image for d in deps)
    assert calls == [ROOT, "docker.io/acme/golden:1"]


def test_auto_rebuild_off_stops_the_cascade_below_it():
    deps = [dep("golden", ROOT, auto=False), dep("app", "golden")]
    dependents_of, tracked, _ = graph(*deps)
    assert affected(ROOT, dependents_of, tracked) == {}


def test_fan_in_waits_for_both_parents_and_priorities_follow_the_longest_chain():
    # Given a diamond with a tail: base -> a, b; c FROM a and b; d FROM c; e FROM base alone
    deps = [dep("a", ROOT), dep("b", ROOT), dep("c", "a", "b"), dep("d", "c"), dep("e", ROOT)]
    dependents_of, tracked, _ = graph(*deps)
    nodes = plan_cascade(ROOT, affected(ROOT, dependents_of, tracked))
    c = nodes["docker.io/acme/c:1"]
    # Then c waits on both parents, and a and b each list it once
    assert c.parents == {"docker.io/acme/a:1", "docker.io/acme/b:1"}
    assert nodes["docker.io/acme/a:1"].children == ["docker.io/acme/c:1"]
    # And priority is the chain length below (unit build times): a=3 (a,c,d), e=1
    assert nodes["docker.io/acme/a:1"].priority == 3
    assert nodes["docker.io/acme/d:1"].priority == 1
    assert nodes["docker.io/acme/e:1"].priority == 1
    first_wave = [n.image for n in release_order(nodes.values()) if not n.parents]
    assert first_wave == ["docker.io/acme/a:1", "docker.io/acme/b:1", "docker.io/acme/e:1"]


def test_build_times_weight_the_priority():
    deps = [dep("slow", ROOT), dep("fast", ROOT), dep("tail", "fast")]
    dependents_of, tracked, _ = graph(*deps)
    times = {"docker.io/acme/slow:1": 10.0, "docker.io/acme/fast:1": 2.0, "docker.io/acme/tail:1": 3.0}
    nodes = plan_cascade(ROOT, affected(ROOT, dependents_of, tracked), build_time=lambda d: times[d.image])
    assert [n.image for n in release_order(nodes.values())][:1] == ["docker.io/acme/slow:1"]
    assert nodes["docker.io/acme/fast:1"].priority == 5.0


def test_a_cycle_in_stored_data_is_refused_not_looped_on():
    # Registration refuses cycles; planning must still not loop if one got stored
    deps = {d.image: d for d in [dep("a", ROOT, "b"), dep("b", "a")]}
    with pytest.raises(CycleInGraph, match="cycle"):
        plan_cascade(ROOT, deps)


def test_a_deep_fleet_is_read_whole_instead_of_one_query_per_base():
    from patchprop.logic.plan import DependentsOf

    # Given a chain of 30 golden images, each a base of the next
    chain = [dep("g0", ROOT)] + [dep(f"g{i}", f"g{i - 1}") for i in range(1, 30)]
    dependents_of, tracked, calls = graph(*chain)

    class CountingStore:
        whole_reads = 0

        def dependents_of(self, base, skipped=None):
            return dependents_of(base)

        def list_dependents(self, skipped=None):
            self.whole_reads += 1
            return iter(chain)

    store = CountingStore()
    # When the affected set is computed through DependentsOf
    found = affected(ROOT, DependentsOf(store), tracked)  # type: ignore[arg-type]
    # Then all 30 are found with 10 per-base queries and one whole read, not 30 queries
    assert sorted(found) == sorted(d.image for d in chain)
    assert len(calls) == DependentsOf.SWITCH_AFTER
    assert store.whole_reads == 1
