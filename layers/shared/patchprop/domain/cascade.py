"""Cascades: when a rebuilt image is itself a base, its dependents follow, in order.

Planning a patch computes the whole affected set at once. Each image is rebuilt once, after
all of its patched parents (fan-in), pinned to the digest its last parent produced. Work is
released longest-remaining-chain first, so the fleet is fully patched as early as possible.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from patchprop.domain.errors import PatchpropError
from patchprop.domain.models import Dependent


class CycleInGraph(PatchpropError):
    """The stored graph has a cycle (registration refuses them; this is a safety net)."""


@dataclass
class Node:
    """One image of a cascade: what it waits for, what waits for it, how urgent it is."""

    dependent: Dependent
    parents: set[str] = field(default_factory=set)  # patched parents (images) in this cascade
    children: list[str] = field(default_factory=list)
    priority: float = 0.0  # expected time from its start to the end of its longest chain

    @property
    def image(self) -> str:
        return self.dependent.image


def affected(
    base: str, dependents_of: Callable[[str], Iterable[Dependent]], tracked: set[str]
) -> dict[str, Dependent]:
    """Every image rebuilt when `base` moves, transitively (only auto-rebuild images pass it on).

    `tracked` are the refs that are bases of something: only those are looked up, so leaves
    cost no query.
    """
    found: dict[str, Dependent] = {}
    queue = deque([base])
    while queue:
        current = queue.popleft()
        for dependent in dependents_of(current):
            if not dependent.auto_rebuild or dependent.image in found or dependent.image == base:
                continue
            found[dependent.image] = dependent
            if dependent.image in tracked:
                queue.append(dependent.image)
    return found


def plan_cascade(
    base: str, dependents: dict[str, Dependent], build_time: Callable[[Dependent], float] = lambda _d: 1.0
) -> dict[str, Node]:
    """The cascade's nodes with parents, children and longest-remaining-chain priorities."""
    nodes = {image: Node(dependent) for image, dependent in dependents.items()}
    for node in nodes.values():
        for parent in node.dependent.bases:
            if parent in nodes:
                node.parents.add(parent)
                nodes[parent].children.append(node.image)
    for node in nodes.values():
        node.children.sort()
    for image in _reverse_topological(nodes):
        node = nodes[image]
        node.priority = build_time(node.dependent) + max(
            (nodes[c].priority for c in node.children), default=0.0
        )
    return nodes


def release_order(nodes: Iterable[Node]) -> list[Node]:
    """Highest priority first; the image name breaks ties so the order is stable."""
    return sorted(nodes, key=lambda n: (-n.priority, n.image))


def _reverse_topological(nodes: dict[str, Node]) -> list[str]:
    """Children before parents (Kahn's algorithm on the child edges)."""
    remaining = {image: len(node.children) for image, node in nodes.items()}
    ready = deque(sorted(image for image, count in remaining.items() if count == 0))
    order: list[str] = []
    while ready:
        image = ready.popleft()
        order.append(image)
        for parent in sorted(nodes[image].parents):
            remaining[parent] -= 1
            if remaining[parent] == 0:
                ready.append(parent)
    if len(order) != len(nodes):
        stuck = sorted(set(nodes) - set(order))
        raise CycleInGraph(f"the graph has a cycle through {', '.join(stuck[:5])}")
    return order
