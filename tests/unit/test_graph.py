"""`patchprop graph` rendering: the API's graph JSON as Mermaid and DOT, failed and blocked marked."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from patchprop_cli.graph import mark, to_dot, to_mermaid

NODE = "docker.io/library/node:22"
GOLDEN = "docker.io/acme/golden:1"
APP = "docker.io/acme/app:1"
WORKER = "docker.io/acme/worker:1"


def _graph(root: str | None = None) -> dict[str, Any]:
    """node:22 <- golden <- {app, worker}: app's last rebuild failed, worker's was blocked."""
    return {
        "root": root,
        "nodes": [
            {"ref": APP, "is_base": False, "is_dependent": True, "last_rebuild": {"status": "FAILED"}},
            {"ref": GOLDEN, "is_base": True, "is_dependent": True, "last_rebuild": {"status": "SUCCEEDED"}},
            {"ref": WORKER, "is_base": False, "is_dependent": True, "last_rebuild": {"status": "BLOCKED"}},
            {"ref": NODE, "is_base": True, "is_dependent": False, "last_rebuild": None},
        ],
        "edges": [
            {"base": GOLDEN, "image": APP},
            {"base": GOLDEN, "image": WORKER},
            {"base": NODE, "image": GOLDEN},
        ],
    }


def test_mermaid_of_a_small_graph() -> None:
    # Given a three-level graph with a failed and a blocked image
    graph = _graph()
    # When it is rendered as Mermaid
    text = to_mermaid(graph)
    # Then every image is a node, edges run base --> image, and the two are classed and labelled
    assert text == (
        "graph TD\n"
        '    n0["docker.io/acme/app:1<br/>FAILED"]\n'
        '    n1["docker.io/acme/golden:1"]\n'
        '    n2["docker.io/acme/worker:1<br/>BLOCKED"]\n'
        '    n3(["docker.io/library/node:22"])\n'
        "    n1 --> n0\n"
        "    n1 --> n2\n"
        "    n3 --> n1\n"
        "    classDef failed fill:#f8d7da,stroke:#b02a37,color:#58151c\n"
        "    class n0 failed\n"
        "    classDef blocked fill:#fff3cd,stroke:#997404,color:#664d03\n"
        "    class n2 blocked\n"
    )


def test_dot_of_a_small_graph() -> None:
    # Given the same graph
    graph = _graph()
    # When it is rendered as Graphviz DOT
    text = to_dot(graph)
    # Then the external base is an ellipse and the failed and blocked images are filled and labelled
    assert text == (
        "digraph patchprop {\n"
        "    rankdir=TB;\n"
        '    node [shape=box, fontname="Helvetica"];\n'
        '    "docker.io/acme/app:1" [label="docker.io/acme/app:1\\nFAILED", style=filled, '
        'fillcolor="#f8d7da", color="#b02a37", fontcolor="#58151c"];\n'
        '    "docker.io/acme/golden:1";\n'
        '    "docker.io/acme/worker:1" [label="docker.io/acme/worker:1\\nBLOCKED", style=filled, '
        'fillcolor="#fff3cd", color="#997404", fontcolor="#664d03"];\n'
        '    "docker.io/library/node:22" [shape=ellipse];\n'
        '    "docker.io/acme/golden:1" -> "docker.io/acme/app:1";\n'
        '    "docker.io/acme/golden:1" -> "docker.io/acme/worker:1";\n'
        '    "docker.io/library/node:22" -> "docker.io/acme/golden:1";\n'
        "}\n"
    )


def test_an_affected_set_marks_its_root() -> None:
    # Given the affected set of node:22
    graph = _graph(root=NODE)
    # When it is rendered both ways
    mermaid, dot = to_mermaid(graph), to_dot(graph)
    # Then the base it was asked for stands out
    assert "    classDef root stroke-width:3px\n    class n3 root\n" in mermaid
    assert '"docker.io/library/node:22" [shape=ellipse, penwidth=3];' in dot


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("FAILED", "failed"),
        ("NOT_STARTED", "failed"),
        ("BLOCKED", "blocked"),
        ("SUCCEEDED", None),
        ("IN_PROGRESS", None),
        (None, None),
    ],
)
def test_marks_follow_the_last_rebuild_status(status: str | None, expected: str | None) -> None:
    # Given a node whose last rebuild has `status`
    node = {"ref": APP, "last_rebuild": {"status": status} if status else None}
    # When it is marked
    # Then only failures (FAILED, NOT_STARTED) and BLOCKED are
    assert mark(node) == expected


@pytest.mark.parametrize(
    ("outcome", "expected"), [("blocked", "blocked"), ("failed", "failed"), ("promoted", None)]
)
def test_a_build_that_succeeded_is_marked_by_the_gates_verdict(outcome: str, expected: str | None) -> None:
    # Given a node whose last build SUCCEEDED and which the gate then judged
    node = {"ref": APP, "last_rebuild": {"status": "SUCCEEDED", "outcome": outcome}}
    # When it is marked, then the verdict decides
    assert mark(node) == expected


def test_nothing_is_marked_when_every_rebuild_succeeded() -> None:
    # Given the graph with every last rebuild succeeded
    graph = copy.deepcopy(_graph())
    for node in graph["nodes"]:
        if node["last_rebuild"]:
            node["last_rebuild"]["status"] = "SUCCEEDED"
    # When it is rendered
    mermaid, dot = to_mermaid(graph), to_dot(graph)
    # Then no class or fill is emitted
    assert "class" not in mermaid
    assert "filled" not in dot


def test_quotes_in_a_label_cannot_break_the_output() -> None:
    # Given a node name with a double quote and a backslash (not a valid reference, but a hostile one)
    graph = {"nodes": [{"ref": 'a"b\\c', "is_dependent": True}], "edges": []}
    # When it is rendered
    mermaid, dot = to_mermaid(graph), to_dot(graph)
    # Then the quote is escaped in each syntax
    assert 'n0["a#quot;b\\c"]' in mermaid
    assert '"a\\"b\\\\c";' in dot


def test_an_edge_to_a_node_not_listed_still_draws() -> None:
    # Given an edge naming an image the node list lacks
    graph = {"nodes": [{"ref": NODE, "is_dependent": False}], "edges": [{"base": NODE, "image": APP}]}
    # When it is rendered as Mermaid
    text = to_mermaid(graph)
    # Then the missing image gets a node and the edge is drawn
    assert 'n1["docker.io/acme/app:1"]' in text
    assert "n0 --> n1" in text
