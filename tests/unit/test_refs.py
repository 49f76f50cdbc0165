"""Edge cases of image reference parsing and normalization (patchprop.domain.refs)."""

from __future__ import annotations

import pytest

from patchprop.domain.errors import InvalidReference
from patchprop.domain.refs import ImageRef, parse_ref

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("node:22", ImageRef("docker.io", "library/node", "22")),
        ("node", ImageRef("docker.io", "library/node", "latest")),
        ("library/node", ImageRef("docker.io", "library/node", "latest")),
        ("docker.io/node:22", ImageRef("docker.io", "library/node", "22")),
        ("index.docker.io/library/node:22", ImageRef("docker.io", "library/node", "22")),
        ("myorg/app:1.2", ImageRef("docker.io", "myorg/app", "1.2")),
        ("dhi.io/python:3.13", ImageRef("dhi.io", "python", "3.13")),
        ("localhost:5000/a/b:1", ImageRef("localhost:5000", "a/b", "1")),
        ("127.0.0.1:5000/team/base", ImageRef("127.0.0.1:5000", "team/base", "latest")),
    ],
)
def test_parse_ref_normalizes_like_docker(text: str, expected: ImageRef) -> None:
    # Given a reference as a user or a Dockerfile writes it
    # When it is parsed
    ref = parse_ref(text)
    # Then it is the fully qualified reference Docker would use
    assert ref == expected


def test_node_22_is_docker_hub_library_node_22() -> None:
    # Given the short and the long spelling of the same image
    # When both are parsed
    # Then they are equal and print the long form
    assert parse_ref("node:22") == parse_ref("docker.io/library/node:22")
    assert str(parse_ref("node:22")) == "docker.io/library/node:22"


def test_digest_only_reference_has_no_tag() -> None:
    # Given a reference by digest only
    # When it is parsed
    ref = parse_ref(f"node@{DIGEST}")
    # Then it has the digest and no tag (no implied latest)
    assert ref.tag is None
    assert ref.digest == DIGEST
    assert ref.repository == "library/node"


def test_tag_and_digest_are_both_kept() -> None:
    # Given a reference with a tag and a digest
    # When it is parsed
    ref = parse_ref(f"node:22@{DIGEST}")
    # Then both are kept
    assert (ref.tag, ref.digest) == ("22", DIGEST)
    assert str(ref) == f"docker.io/library/node:22@{DIGEST}"


@pytest.mark.parametrize(
    "text",
    [
        "Node:22",  # upper case repository
        "node:",  # trailing colon
        f"node@{DIGEST[:20]}",  # short digest
        "no de:1",  # space inside
        "node :1",
        "node:22 ",  # trailing white space
        "a/b:" + "x" * 129,  # tag too long
        "node:-bad",  # tag starting with a dash
    ],
)
def test_invalid_references_raise_naming_the_input(text: str) -> None:
    # Given a reference Docker would refuse
    # When it is parsed
    with pytest.raises(InvalidReference) as caught:
        parse_ref(text)
    # Then the error names the input
    assert repr(text) in str(caught.value)


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_reference_is_invalid(text: str) -> None:
    # Given an empty or blank reference
    # When it is parsed
    with pytest.raises(InvalidReference, match="empty"):
        parse_ref(text)
    # Then InvalidReference is also a ValueError, for callers that only know the builtin
    assert issubclass(InvalidReference, ValueError)


def test_pinned_uses_the_digest_and_drops_the_tag() -> None:
    # Given a reference with a tag and a digest
    ref = parse_ref(f"dhi.io/python:3.13@{DIGEST}")
    # When it is pinned
    # Then the result names the digest only
    assert ref.pinned == f"dhi.io/python@{DIGEST}"
    assert parse_ref(ref.pinned) == ImageRef("dhi.io", "python", None, DIGEST)


def test_pinned_without_digest_raises() -> None:
    # Given a tag-only reference
    ref = parse_ref("node:22")
    # When it is pinned
    # Then that is an error naming the reference
    with pytest.raises(InvalidReference, match=r"docker\.io/library/node:22"):
        _ = ref.pinned


def test_with_digest_keeps_the_tag() -> None:
    # Given a tag reference
    # When a digest is attached
    ref = parse_ref("node:22").with_digest(DIGEST)
    # Then the tag is kept for readers and the pin uses the digest
    assert str(ref) == f"docker.io/library/node:22@{DIGEST}"
    assert ref.without_digest() == parse_ref("node:22")


@pytest.mark.parametrize(
    ("text", "api_host"),
    [
        ("node:22", "registry-1.docker.io"),
        ("docker.io/myorg/app", "registry-1.docker.io"),
        ("dhi.io/python:3.13", "dhi.io"),
        ("localhost:5000/a/b:1", "localhost:5000"),
        ("ghcr.io/org/img:1", "ghcr.io"),
    ],
)
def test_api_host_maps_docker_hub_only(text: str, api_host: str) -> None:
    # Given a reference
    # When its API host is asked for
    # Then Docker Hub maps to registry-1.docker.io and every other registry is itself
    assert parse_ref(text).api_host == api_host


@pytest.mark.parametrize(
    "text",
    [
        "docker.io/library/node:22",
        "dhi.io/python:3.13",
        "localhost:5000/a/b:1",
        f"docker.io/library/node@{DIGEST}",
        f"ghcr.io/org/img:1@{DIGEST}",
    ],
)
def test_str_round_trips(text: str) -> None:
    # Given a normalized reference
    ref = parse_ref(text)
    # When it is printed and parsed again
    # Then nothing is lost
    assert str(ref) == text
    assert parse_ref(str(ref)) == ref
