"""The dependency graph (the API's `GET /graph` JSON) as Mermaid and as Graphviz DOT.

Edges point from a base to the images built FROM it: the way a patch travels. An image whose
last rebuild failed (FAILED, NOT_STARTED) or was blocked (BLOCKED) is marked.
"""

from __future__ import annotations

from typing import Any

Graph = dict[str, Any]

FAILED = frozenset({"FAILED", "NOT_STARTED"})
BLOCKED = frozenset({"BLOCKED"})
# (fill, stroke, text) per mark
COLOURS = {
    "failed": ("#f8d7da", "#b02a37", "#58151c"),
    "blocked": ("#fff3cd", "#997404", "#664d03"),
}


def last_status(node: dict[str, Any]) -> str | None:
    """The last rebuild's verdict when the gate blocked or failed it (a build that SUCCEEDED can
    be either), else its build status."""
    last = node.get("last_rebuild") or {}
    outcome = str(last.get("outcome") or "")
    if outcome in ("blocked", "failed"):
        return outcome.upper()
    status = last.get("status")
    return str(status) if status else None


def mark(node: dict[str, Any]) -> str | None:
    """`failed` or `blocked` from the node's last rebuild, else None."""
    status = last_status(node)
    if status in FAILED:
        return "failed"
    if status in BLOCKED:
        return "blocked"
    return None


def _nodes(graph: Graph) -> list[dict[str, Any]]:
    """The graph's nodes, plus any that only an edge names (so every edge can be drawn)."""
    nodes = list(graph.get("nodes", []))
    known = {n["ref"] for n in nodes}
    for edge in graph.get("edges", []):
        for ref in (edge["base"], edge["image"]):
            if ref not in known:
                known.add(ref)
                nodes.append(
                    {"ref": ref, "is_base": ref == edge["base"], "is_dependent": ref == edge["image"]}
                )
    return nodes


def _label(node: dict[str, Any]) -> tuple[str, str | None]:
    status = last_status(node) if mark(node) else None
    return node["ref"], status


def _external(node: dict[str, Any]) -> bool:
    """A base nobody registered as an image: drawn differently from the user's own images."""
    return not node.get("is_dependent")


def to_mermaid(graph: Graph) -> str:
    """`graph TD` with one node per image, `base --> image` edges, marked nodes classed."""
    nodes = _nodes(graph)
    ids = {node["ref"]: f"n{i}" for i, node in enumerate(nodes)}
    lines = ["graph TD"]
    classes: dict[str, list[str]] = {}
    for node in nodes:
        ref, status = _label(node)
        text = (ref + (f"<br/>{status}" if status else "")).replace('"', "#quot;")
        shape = '(["{}"])' if _external(node) else '["{}"]'
        lines.append(f"    {ids[ref]}{shape.format(text)}")
        if (kind := mark(node)) is not None:
            classes.setdefault(kind, []).append(ids[ref])
        if graph.get("root") == ref:
            classes.setdefault("root", []).append(ids[ref])
    for edge in graph.get("edges", []):
        lines.append(f"    {ids[edge['base']]} --> {ids[edge['image']]}")
    for kind, members in classes.items():
        if kind == "root":
            lines.append("    classDef root stroke-width:3px")
        else:
            fill, stroke, colour = COLOURS[kind]
            lines.append(f"    classDef {kind} fill:{fill},stroke:{stroke},color:{colour}")
        lines.append(f"    class {','.join(members)} {kind}")
    return "\n".join(lines) + "\n"


def _dot_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _dot_quote(text: str) -> str:
    return f'"{_dot_escape(text)}"'


def to_dot(graph: Graph) -> str:
    """`digraph patchprop` with one node per image, `base -> image` edges, marked nodes filled."""
    lines = ["digraph patchprop {", "    rankdir=TB;", '    node [shape=box, fontname="Helvetica"];']
    for node in _nodes(graph):
        ref, status = _label(node)
        attrs: list[str] = []
        if _external(node):
            attrs.append("shape=ellipse")
        if status:
            attrs.append(f'label="{_dot_escape(ref)}\\n{_dot_escape(status)}"')  # \n: a line break in DOT
        if (kind := mark(node)) is not None:
            fill, stroke, colour = COLOURS[kind]
            attrs += ["style=filled", f'fillcolor="{fill}"', f'color="{stroke}"', f'fontcolor="{colour}"']
        if graph.get("root") == ref:
            attrs.append("penwidth=3")
        lines.append(f"    {_dot_quote(ref)}" + (f" [{', '.join(attrs)}]" if attrs else "") + ";")
    for edge in graph.get("edges", []):
        lines.append(f"    {_dot_quote(edge['base'])} -> {_dot_quote(edge['image'])};")
    lines.append("}")
    return "\n".join(lines) + "\n"
