"""`patchprop discover`: bases found in Dockerfiles the way BuildKit reads them (no network)."""

from __future__ import annotations

import json
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from patchprop_cli.discover import DiscoverError, FoundBase, discover, discover_all, find_dockerfiles
from patchprop_cli.discover_cmd import discover as discover_command

DIGEST = "sha256:" + "ab" * 32

# An ARG-templated FROM with a default, a build stage from another image, a COPY --from an
# image, and a final stage FROM an earlier stage: the runtime base is that stage's image.
ACCEPTANCE = """\
# syntax=docker/dockerfile:1
ARG NODE_VERSION=22
ARG REGISTRY=docker.io

FROM --platform=$BUILDPLATFORM ${REGISTRY}/library/node:${NODE_VERSION}-slim AS runtime
RUN useradd app

FROM golang:1.23 AS build
WORKDIR /src
RUN go build -o /out/tool ./cmd/tool

FROM runtime AS final
COPY --from=build /out/tool /usr/local/bin/tool
COPY --from=ghcr.io/astral-sh/uv:0.5.11 /uv /bin/uv
USER app
"""


def write(tmp_path: Path, text: str, name: str = "Dockerfile") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def refs(path: Path, build_args: dict[str, str] | None = None) -> list[str]:
    return [base.ref for base in discover(path, build_args).bases]


def error_of(path: Path, build_args: dict[str, str] | None = None) -> str:
    with pytest.raises(DiscoverError) as caught:
        discover(path, build_args)
    return str(caught.value)


# ---- the acceptance example ---------------------------------------------------------------


def test_multi_stage_dockerfile_reports_exactly_its_bases_with_the_runtime_marked(tmp_path: Path) -> None:
    # Given the multi-stage Dockerfile of the issue
    path = write(tmp_path, ACCEPTANCE)
    # When its bases are discovered
    found = discover(path)
    # Then exactly the three images are reported, normalized, in file order, and the final
    # stage (FROM runtime) resolves through the alias to the node image
    assert found.path == str(path)
    assert found.bases == [
        FoundBase("docker.io/library/node:22-slim", "from", "runtime", 5, runtime=True),
        FoundBase("docker.io/library/golang:1.23", "from", "build", 8, runtime=False),
        FoundBase("ghcr.io/astral-sh/uv:0.5.11", "copy-from", "final", 14, runtime=False),
    ]
    assert found.runtime_base == "docker.io/library/node:22-slim"


def test_build_arg_overrides_the_arg_default(tmp_path: Path) -> None:
    # Given the same Dockerfile
    path = write(tmp_path, ACCEPTANCE)
    # When NODE_VERSION and REGISTRY are passed as build args
    found = discover(path, {"NODE_VERSION": "20", "REGISTRY": "mirror.example.com"})
    # Then the FROM uses them instead of the defaults
    assert found.runtime_base == "mirror.example.com/library/node:20-slim"
    assert found.bases[0].ref == "mirror.example.com/library/node:20-slim"


def test_build_arg_for_an_arg_that_is_not_declared_is_not_used(tmp_path: Path) -> None:
    # Given a FROM with a literal tag, and no ARG TAG
    path = write(tmp_path, "FROM node:22\n")
    # When a --build-arg TAG is given anyway
    # Then it changes nothing (BuildKit only feeds declared ARGs)
    assert refs(path, {"TAG": "18"}) == ["docker.io/library/node:22"]


@pytest.mark.parametrize(
    ("args", "from_", "build_args", "expected"),
    [
        ("ARG V", "node:${V:-18}", {}, "node:18"),
        ("ARG V", "node:${V:-18}", {"V": "20"}, "node:20"),
        ('ARG V=""', "node:${V:-18}", {}, "node:18"),
        ('ARG V=""', "node${V-:18}", {}, "node:latest"),  # set but empty: `-` keeps it
        ("ARG V", "node${V:+:99}", {}, "node:latest"),
        ("ARG V=1", "node${V:+:99}", {}, "node:99"),
        ("ARG V=20", "node:$V", {}, "node:20"),
        ("ARG V=20", "node:${V}-alpine", {}, "node:20-alpine"),
        ("ARG V=20.1.2", "node:${V%.*}", {}, "node:20.1"),
        ("ARG V=20.1.2", "node:${V%%.*}", {}, "node:20"),
        ("ARG IMG=python\nARG TAG=3.13\nARG REF=${IMG}:${TAG}", "$REF", {}, "python:3.13"),
        ('ARG IMG="node:22"', '"${IMG}"', {}, "node:22"),  # quotes are shell quotes
    ],
)
def test_variable_forms_in_from(
    tmp_path: Path, args: str, from_: str, build_args: dict[str, str], expected: str
) -> None:
    # Given global ARGs and a FROM using one of the shell-word forms
    path = write(tmp_path, f"{args}\nFROM {from_}\n")
    # When its bases are discovered
    found = discover(path, build_args)
    # Then the FROM expands as BuildKit would
    assert found.runtime_base == f"docker.io/library/{expected}"


def test_single_quoted_dollar_is_literal_and_then_an_invalid_reference(tmp_path: Path) -> None:
    # Given a FROM whose tag is a single-quoted '$V'
    path = write(tmp_path, "ARG V=20\nFROM 'node:$V'\n")
    # When discovered, Then `$V` stays literal and the reference is refused
    assert "node:$V" in error_of(path)


def test_arg_declared_inside_a_stage_does_not_reach_from(tmp_path: Path) -> None:
    # Given an ARG declared in a stage (not global) and used by the next FROM
    path = write(tmp_path, "FROM alpine:3.20\nARG TAG=22\nFROM node:${TAG}\n")
    # When discovered, Then it is not visible to FROM, as in BuildKit
    message = error_of(path)
    assert message.startswith(f"{path}:3: ")
    assert "TAG" in message
    assert "no ARG TAG is declared before the first FROM" in message


def test_escape_directive_changes_the_escape_character(tmp_path: Path) -> None:
    # Given `# escape=`` with a backtick line continuation inside a FROM and Windows paths
    path = write(
        tmp_path, "# escape=`\nARG V=22\nFROM node:${V} `\n  AS app\nCOPY --from=busybox:1 C:\\x C:\\y\n"
    )
    # When discovered, Then the continued FROM and the COPY --from are read
    found = discover(path)
    assert [(b.ref, b.stage, b.line) for b in found.bases] == [
        ("docker.io/library/node:22", "app", 3),
        ("docker.io/library/busybox:1", "app", 5),
    ]
    # And a backtick escapes `$` in FROM, so `$V` stays literal (an invalid reference)
    escaped = write(tmp_path, "# escape=`\nARG V=22\nFROM node:`$V\n", "Escaped.Dockerfile")
    assert "invalid image reference 'node:$V'" in error_of(escaped)


# ---- what is and is not a base -------------------------------------------------------------


def test_platform_flag_is_ignored(tmp_path: Path) -> None:
    # Given FROMs with --platform, one using a platform variable nobody defined
    path = write(
        tmp_path,
        """\
        FROM --platform=$BUILDPLATFORM golang:1.23 AS build
        FROM --platform=linux/arm64 alpine:3.20
        COPY --from=build /out /out
        """,
    )
    # When discovered, Then the images are found and the platforms play no part
    assert refs(path) == ["docker.io/library/golang:1.23", "docker.io/library/alpine:3.20"]


def test_platform_args_default_to_the_target_platform_and_say_so(tmp_path: Path) -> None:
    # Given a FROM whose image depends on the target architecture, no ARG, no --build-arg
    path = write(tmp_path, "FROM example.com/tools-${TARGETARCH}:1\n")
    # When discovered, Then TARGETARCH is BuildKit's predefined value for linux/amd64, said in a note
    found = discover(path)
    assert found.refs == ["example.com/tools-amd64:1"]
    assert found.notes == [
        "line 1: $TARGETARCH was not passed; BuildKit predefines it from the target platform: "
        "amd64 for linux/amd64"
    ]
    # And a --build-arg still wins, as in BuildKit
    assert refs(path, {"TARGETARCH": "arm64"}) == ["example.com/tools-arm64:1"]


def test_each_platform_s_bases_are_found_when_they_differ(tmp_path: Path) -> None:
    # Given bases chosen by TARGETARCH and TARGETPLATFORM, and one shared base
    path = write(
        tmp_path,
        """\
        FROM --platform=$BUILDPLATFORM golang:1.23 AS build
        FROM example.com/runtime-${TARGETARCH}:1
        COPY --from=build /out /out
        """,
    )
    # When discovered for linux/amd64 and linux/arm64
    found = discover(path, platforms=["linux/amd64", "linux/aarch64"])
    # Then each platform's base is found, marked with the platform it belongs to
    assert found.platforms == ("linux/amd64", "linux/arm64")
    assert [(b.ref, b.platforms) for b in found.bases] == [
        ("docker.io/library/golang:1.23", ()),
        ("example.com/runtime-amd64:1", ("linux/amd64",)),
        ("example.com/runtime-arm64:1", ("linux/arm64",)),
    ]
    assert found.runtime_by_platform == {
        "linux/amd64": "example.com/runtime-amd64:1",
        "linux/arm64": "example.com/runtime-arm64:1",
    }


def test_scratch_is_skipped_and_a_scratch_final_stage_has_no_runtime_base(tmp_path: Path) -> None:
    # Given a build stage from golang and a final stage FROM scratch copying from busybox too
    path = write(
        tmp_path,
        """\
        FROM golang:1.23 AS build
        RUN go build -o /app .
        FROM scratch
        COPY --from=build /app /app
        COPY --from=busybox:1.36 /bin/busybox /busybox
        """,
    )
    # When discovered
    found = discover(path)
    # Then scratch is no base, nothing is the runtime base, and the other bases are found
    assert found.runtime_base is None
    assert [(b.ref, b.kind, b.stage, b.runtime) for b in found.bases] == [
        ("docker.io/library/golang:1.23", "from", "build", False),
        ("docker.io/library/busybox:1.36", "copy-from", 1, False),
    ]


def test_copy_from_stage_names_and_indexes_are_stages_not_images(tmp_path: Path) -> None:
    # Given COPY --from by index, by the name of a later stage (BuildKit registers every stage
    # before it resolves --from), and by name in another case
    path = write(
        tmp_path,
        """\
        FROM alpine:3.20
        RUN echo 0
        FROM debian:12 AS Builder
        COPY --from=0 /a /a
        COPY --from=ASSETS /c /c
        FROM nginx:1.27 AS assets
        FROM builder
        """,
    )
    # When discovered
    found = discover(path)
    # Then only the three FROM images are bases; the stage name is lower-cased as in BuildKit
    assert [(b.ref, b.stage) for b in found.bases] == [
        ("docker.io/library/alpine:3.20", 0),
        ("docker.io/library/debian:12", "builder"),
        ("docker.io/library/nginx:1.27", "assets"),
    ]
    assert found.runtime_base == "docker.io/library/debian:12"


def test_stages_the_final_stage_does_not_need_are_not_pulled(tmp_path: Path) -> None:
    # Given two variants chosen by an ARG, as docker/compose's Dockerfile does
    path = write(
        tmp_path,
        """\
        ARG VARIANT=alpine
        FROM alpine:3.20 AS runtime-alpine
        FROM debian:12 AS runtime-debian
        FROM golang:1.23 AS unused
        FROM runtime-${VARIANT}
        """,
    )
    # When discovered
    found = discover(path)
    # Then only the chosen variant's base is one (BuildKit resolves only reachable stages), and
    # the others are named in notes
    assert found.refs == ["docker.io/library/alpine:3.20"]
    assert found.notes == [
        "line 3: docker.io/library/debian:12 is not pulled: "
        "stage runtime-debian is not needed by the final stage",
        "line 4: docker.io/library/golang:1.23 is not pulled: stage unused is not needed by the final stage",
    ]


@pytest.mark.parametrize(
    ("text", "line", "stage"),
    [
        ("FROM alpine:3.20 AS a\nCOPY --from=a /x /x\nFROM debian:12\n", 2, "a"),
        ("FROM alpine:3.20 AS a\nCOPY --from=b /x /x\nFROM debian:12 AS b\nCOPY --from=a /y /y\n", 4, "a"),
        (
            "FROM alpine:3.20\nRUN --mount=from=1,target=/m true\nFROM debian:12\nCOPY --from=0 /a /a\n",
            4,
            "stage-0",
        ),
    ],
)
def test_a_stage_that_depends_on_itself_is_refused_like_buildkit(
    tmp_path: Path, text: str, line: int, stage: str
) -> None:
    # Given stages copying or mounting from each other in a circle
    path = write(tmp_path, text)
    # When discovered, Then it is BuildKit's "circular dependency" with file and line
    assert error_of(path) == f"{path}:{line}: circular dependency detected on stage: {stage}"


def test_copy_from_an_index_out_of_range_is_an_error(tmp_path: Path) -> None:
    # Given a COPY --from=3 in a one-stage Dockerfile
    path = write(tmp_path, "FROM alpine:3.20\nCOPY --from=3 /a /a\n")
    # When discovered, Then the index is refused at its line
    assert error_of(path) == f"{path}:2: invalid stage index 3"


def test_copy_from_a_variable_is_refused_like_buildkit_does(tmp_path: Path) -> None:
    # Given COPY --from=${IMG}, which BuildKit refuses
    path = write(tmp_path, "ARG IMG=busybox\nFROM alpine:3.20\nCOPY --from=${IMG} /a /a\n")
    # When discovered, Then the message says so, at the COPY's line
    message = error_of(path)
    assert message.startswith(f"{path}:3: ")
    assert "variable expansion is not supported for --from" in message


def test_run_mount_from_an_image_is_a_base_and_from_a_stage_is_not(tmp_path: Path) -> None:
    # Given RUN --mount from an image (bind and cache), from a stage, and a mount with no from
    path = write(
        tmp_path,
        """\
        FROM golang:1.23 AS build
        FROM python:3.13-slim
        RUN --mount=type=bind,from=alpine:3.20,source=/etc/ssl,target=/ssl \\
            --mount=type=cache,target=/root/.cache \\
            --mount=type=bind,from=build,source=/out,target=/out cp /out/x /x
        RUN --mount=type=cache,"from=ghcr.io/acme/cache-seed:1",target=/c true
        """,
    )
    # When discovered
    found = discover(path)
    # Then the two images are mount-from bases of the final stage, the stage is not a base
    assert [(b.ref, b.kind, b.stage, b.line) for b in found.bases] == [
        ("docker.io/library/golang:1.23", "from", "build", 1),
        ("docker.io/library/python:3.13-slim", "from", 1, 2),
        ("docker.io/library/alpine:3.20", "mount-from", 1, 3),
        ("ghcr.io/acme/cache-seed:1", "mount-from", 1, 6),
    ]


def test_onbuild_triggers_are_not_bases(tmp_path: Path) -> None:
    # Given an ONBUILD COPY --from an image
    path = write(tmp_path, "FROM alpine:3.20\nONBUILD COPY --from=busybox:1 /bin/sh /sh\n")
    # When discovered, Then only the FROM is a base
    assert refs(path) == ["docker.io/library/alpine:3.20"]


def test_the_same_image_twice_is_one_base_and_the_runtime_occurrence_wins(tmp_path: Path) -> None:
    # Given node:22 as a COPY --from source, a build stage, and the final stage's base
    path = write(
        tmp_path,
        """\
        FROM node:22 AS deps
        COPY --from=docker.io/library/node:22 /usr/local/bin/node /node
        FROM golang:1.23 AS build
        FROM node:22
        COPY --from=golang:1.23 /usr/local/go /go
        COPY --from=deps /a /a
        COPY --from=build /b /b
        """,
    )
    # When discovered
    found = discover(path)
    # Then each image is reported once, at its first place, with the runtime details kept
    assert found.bases == [
        FoundBase("docker.io/library/node:22", "from", 2, 4, runtime=True),
        FoundBase("docker.io/library/golang:1.23", "from", "build", 3, runtime=False),
    ]
    assert found.runtime_base == "docker.io/library/node:22"


def test_alias_chain_resolves_to_the_root_image(tmp_path: Path) -> None:
    # Given stages built FROM each other, three deep
    path = write(tmp_path, "FROM alpine:3.20 AS one\nFROM one AS two\nFROM two\n")
    # When discovered, Then the final stage's runtime base is the first stage's image
    found = discover(path)
    assert found.runtime_base == "docker.io/library/alpine:3.20"
    assert found.bases == [FoundBase("docker.io/library/alpine:3.20", "from", "one", 1, runtime=True)]


def test_a_stage_named_like_its_own_base_is_an_image(tmp_path: Path) -> None:
    # Given `FROM node AS node`: a stage is only named after its FROM
    path = write(tmp_path, "FROM node AS node\n")
    # When discovered, Then node is the image
    assert refs(path) == ["docker.io/library/node:latest"]


def test_tag_and_digest_is_kept_and_tracked_as_the_tag(tmp_path: Path) -> None:
    # Given a base pinned as tag@digest
    path = write(tmp_path, f"FROM node:22@{DIGEST}\n")
    # When discovered
    found = discover(path)
    # Then the found ref and the runtime base keep the digest and the tracked base is the tag
    assert found.runtime_base == f"docker.io/library/node:22@{DIGEST}"
    assert found.refs == [f"docker.io/library/node:22@{DIGEST}"]
    assert found.tracked_bases() == ["docker.io/library/node:22"]
    assert found.tracked_runtime_base == "docker.io/library/node:22"


def test_digest_only_base_is_recorded_pinned_and_not_tracked(tmp_path: Path) -> None:
    # Given a digest-only FROM among other bases, and a COPY --from pinned by digest alone
    path = write(
        tmp_path,
        f"FROM alpine@{DIGEST} AS tools\nFROM node:22\nCOPY --from=busybox@{DIGEST} /bin/sh /sh\n"
        "COPY --from=tools /t /t\n",
    )
    # When discovered
    found = discover(path)
    # Then every base is kept in full, the rest of the file is read, and only tags are tracked
    assert found.refs == [
        f"docker.io/library/alpine@{DIGEST}",
        "docker.io/library/node:22",
        f"docker.io/library/busybox@{DIGEST}",
    ]
    assert found.tracked_bases() == ["docker.io/library/node:22"]
    assert found.pinned_bases() == [
        f"docker.io/library/alpine@{DIGEST}",
        f"docker.io/library/busybox@{DIGEST}",
    ]


# ---- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        # the parser raises these without a line: the line is found by re-parsing prefixes
        ("FROM a\nCOPY <<EOF /x\nhello\nEOF\nRUN ok\nRUN <<EOT\nnever closed\n", 6, "unterminated heredoc"),
        (
            "FROM a\n\n# note\nRUN echo \\\n  hi\nENV \\\n  JUST_A_NAME\nRUN x\n",
            6,
            "ENV must have two arguments",
        ),
        ("FROM a\nLABEL a=b c\n", 2, 'Syntax error - can\'t find = in "c"'),
        ("# escape=x\nFROM a\n", 1, "invalid escape token"),
        # the parser accepts these; BuildKit's next step does not
        ("FROM a\nFOO bar\n", 2, "unknown instruction: FOO"),
        ("RUN echo\nFROM a\n", 1, "no build stage in current context"),
        ("FROM a b c d\n", 1, "FROM requires either one or three arguments"),
        ("FROM a AS 1st\n", 1, "invalid name for build stage"),
        ("FROM a\nCOPY --from busybox /a /b\n", 2, "missing a value on flag: --from"),
        ("FROM a\nRUN --mount=type=bind,from=$IMG,target=/x true\n", 2, "doesn't support variable expansion"),
    ],
)
def test_syntax_errors_name_the_file_and_line(tmp_path: Path, text: str, line: int, reason: str) -> None:
    # Given a Dockerfile with a syntax error
    path = write(tmp_path, text)
    # When discovered
    message = error_of(path)
    # Then the message starts with file:line and says what is wrong
    assert message.startswith(f"{path}:{line}: ")
    assert reason in message


def test_arg_without_default_and_without_build_arg_is_named(tmp_path: Path) -> None:
    # Given a global ARG with no default used in the second FROM
    path = write(tmp_path, "ARG BASE_TAG\nFROM alpine:3.20 AS tools\nFROM python:${BASE_TAG}\n")
    # When discovered without --build-arg
    message = error_of(path)
    # Then the message names the ARG and the FROM's line
    assert message == (
        f"{path}:3: ARG BASE_TAG is used in FROM python:${{BASE_TAG}} but has no default value; "
        "pass --build-arg BASE_TAG=<value>"
    )
    # And with the build arg it resolves
    assert discover(path, {"BASE_TAG": "3.13"}).runtime_base == "docker.io/library/python:3.13"


def test_arg_default_built_from_an_unset_arg_names_the_unset_one(tmp_path: Path) -> None:
    # Given IMAGE=node:${VERSION} where VERSION has no default
    path = write(tmp_path, "ARG VERSION\nARG IMAGE=node:${VERSION}\nFROM ${IMAGE}\n")
    # When discovered, Then the error names VERSION, the ARG the user must give
    message = error_of(path)
    assert message.startswith(f"{path}:3: ARG VERSION is used in FROM")


def test_invalid_reference_after_substitution_includes_the_reference(tmp_path: Path) -> None:
    # Given an ARG default that makes an upper-case (invalid) repository name
    path = write(tmp_path, "ARG NAME=Node\nFROM ${NAME}:22\n")
    # When discovered
    message = error_of(path)
    # Then the message has the line, the FROM as written and the reference it became
    assert message.startswith(f"{path}:2: FROM ${{NAME}}:22: invalid image reference 'Node:22'")


def test_invalid_copy_from_reference_is_an_error(tmp_path: Path) -> None:
    # Given a COPY --from naming no stage and no valid image
    path = write(tmp_path, "FROM alpine:3.20\nCOPY --from=Not_A_Stage:x:y /a /a\n")
    # When discovered, Then it is refused with the reference text
    assert error_of(path).startswith(f"{path}:2: COPY --from: invalid image reference 'Not_A_Stage:x:y'")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "the file is empty"),
        ("# just a comment\n\n", "no instructions"),
        ("ARG A=1\n", "no FROM"),
    ],
)
def test_empty_file_or_no_from_is_an_error(tmp_path: Path, text: str, reason: str) -> None:
    # Given a file with no FROM
    path = write(tmp_path, text)
    # When discovered, Then it is refused with file and line
    message = error_of(path)
    assert message.startswith(f"{path}:1: ")
    assert reason in message


# ---- which files ---------------------------------------------------------------------------


def test_find_dockerfiles_in_a_directory_and_as_files(tmp_path: Path) -> None:
    # Given a directory with Dockerfiles, their ignore files and other files, and a file elsewhere
    project = tmp_path / "project"
    project.mkdir()
    for name in [
        "Dockerfile",
        "Containerfile",
        "api.Dockerfile",
        "Dockerfile.dev",
        "Dockerfile.dockerignore",
        "README.md",
    ]:
        (project / name).write_text("FROM alpine\n")
    (project / "sub").mkdir()
    (project / "sub" / "Dockerfile").write_text("FROM alpine\n")
    other = write(tmp_path, "FROM alpine\n", "custom.txt")
    # When looked for (the Dockerfile also named directly)
    found = find_dockerfiles([project, other, project / "Dockerfile"])
    # Then the top-level Dockerfiles come in name order, then the file as given, without repeats
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "project/Containerfile",
        "project/Dockerfile",
        "project/Dockerfile.dev",
        "project/api.Dockerfile",
        "custom.txt",
    ]


def test_find_dockerfiles_in_a_directory_without_any_is_an_error(tmp_path: Path) -> None:
    # Given an empty directory and a missing path
    # When looked for, Then each is refused by name
    with pytest.raises(DiscoverError, match="no Dockerfile or Containerfile"):
        find_dockerfiles([tmp_path])
    with pytest.raises(DiscoverError, match="no such file"):
        find_dockerfiles([tmp_path / "missing"])


# ---- the command ---------------------------------------------------------------------------


def run(*args: str) -> Any:
    return CliRunner().invoke(discover_command, list(args))


def test_command_dry_run_json_prints_exactly_what_it_would_register(tmp_path: Path) -> None:
    # Given the acceptance Dockerfile
    path = write(tmp_path, ACCEPTANCE)
    # When `discover --dry-run --json` runs with an image and a build arg
    result = run(
        str(path), "--dry-run", "--json", "--image", "acme/api:2.4", "--build-arg", "NODE_VERSION=20"
    )
    # Then it prints the dependent with its normalized bases and the runtime base marked
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "dependents": [
            {
                "dockerfile": str(path),
                "image": "docker.io/acme/api:2.4",
                "bases": [
                    "docker.io/library/node:20-slim",
                    "docker.io/library/golang:1.23",
                    "ghcr.io/astral-sh/uv:0.5.11",
                ],
                "runtime_base": "docker.io/library/node:20-slim",
                "tracked": [
                    "docker.io/library/node:20-slim",
                    "docker.io/library/golang:1.23",
                    "ghcr.io/astral-sh/uv:0.5.11",
                ],
                "pinned": [],
                "platforms": ["linux/amd64"],
                "notes": [],
                "pin_warning": (
                    "line 5: the runtime stage's FROM does not use ${BASE_IMAGE}, so a rebuild cannot pin "
                    "it to the new base's digest (and patchprop refuses such a rebuild); write "
                    "`ARG BASE_IMAGE=docker.io/library/node:20-slim` before the first FROM and "
                    "`FROM ${BASE_IMAGE} AS runtime` on line 5"
                ),
                "found": [
                    {
                        "ref": "docker.io/library/node:20-slim",
                        "kind": "from",
                        "stage": "runtime",
                        "line": 5,
                        "runtime": True,
                    },
                    {
                        "ref": "docker.io/library/golang:1.23",
                        "kind": "from",
                        "stage": "build",
                        "line": 8,
                        "runtime": False,
                    },
                    {
                        "ref": "ghcr.io/astral-sh/uv:0.5.11",
                        "kind": "copy-from",
                        "stage": "final",
                        "line": 14,
                        "runtime": False,
                    },
                ],
                # The final stage is FROM the runtime stage, whose RUN reads the base's files.
                "rebase_safe": False,
                "rebase_unsafe_reason": "RUN at line 6",
            }
        ],
        "errors": [],
    }


def test_command_dry_run_table_marks_the_runtime_base(tmp_path: Path) -> None:
    # Given the acceptance Dockerfile
    path = write(tmp_path, ACCEPTANCE)
    # When `discover --dry-run` runs without --json
    result = run(str(path), "--dry-run")
    # Then a table has one row per base, and only the node row carries the runtime marker
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == str(path)
    assert lines[1].split() == ["REF", "KIND", "STAGE", "LINE", "RUNTIME"]
    assert [line.split() for line in lines[2:6]] == [
        ["docker.io/library/node:22-slim", "from", "runtime", "5", "runtime"],
        ["docker.io/library/golang:1.23", "from", "build", "8"],
        ["ghcr.io/astral-sh/uv:0.5.11", "copy-from", "final", "14"],
        ["rebase-safe:", "no", "(RUN", "at", "line", "6)"],
    ]
    # And, as its runtime FROM does not use ${BASE_IMAGE}, the line to write
    assert lines[6:] == [
        "  warning: line 5: the runtime stage's FROM does not use ${BASE_IMAGE}, so a rebuild cannot pin "
        "it to the new base's digest (and patchprop refuses such a rebuild); write "
        "`ARG BASE_IMAGE=docker.io/library/node:22-slim` before the first FROM and "
        "`FROM ${BASE_IMAGE} AS runtime` on line 5"
    ]


@pytest.mark.parametrize(
    ("options", "missing"),
    [
        ([], "--image, --project, --source-location"),
        (["--image", "acme/api:1", "--source-location", "."], "--project"),
        (["--project", "api-build", "--source-location", "."], "--image"),
        (["--image", "acme/api:1", "--project", "api-build"], "--source-location"),
    ],
)
def test_command_without_dry_run_requires_image_project_and_source(
    tmp_path: Path, options: list[str], missing: str
) -> None:
    # Given a Dockerfile
    path = write(tmp_path, ACCEPTANCE)
    # When `discover` runs to register without --image, --project and/or a source to rebuild
    result = run(str(path), *options)
    # Then it is a usage error naming what is missing
    assert result.exit_code == 2
    assert f"registering needs {missing}" in result.stderr


def fake_client(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """A client module that records what it is asked to register (and answers as the API)."""
    calls: list[dict[str, Any]] = []
    client = types.ModuleType("patchprop_cli.client")

    def register_dependent(**kwargs: Any) -> dict[str, Any]:
        calls.append({k: v for k, v in kwargs.items() if k != "client"})
        return {"dependent": kwargs, "created": True, "baselined": kwargs["bases"][:1]}

    client.register_dependent = register_dependent  # type: ignore[attr-defined]
    client.ApiClient = types.SimpleNamespace(for_url=lambda url: None)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "patchprop_cli.client", client)
    return calls


PINNABLE = ACCEPTANCE.replace(
    "\nFROM --platform=$BUILDPLATFORM ${REGISTRY}/library/node:${NODE_VERSION}-slim AS runtime",
    "ARG BASE_IMAGE=${REGISTRY}/library/node:${NODE_VERSION}-slim\nFROM ${BASE_IMAGE} AS runtime",
)


def test_command_registers_the_image_on_all_its_bases(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a Dockerfile whose runtime FROM takes the pin, and a client that records the calls
    path = write(tmp_path, PINNABLE)
    calls = fake_client(monkeypatch)
    # When `discover` runs with register's options: --image, --project, --owner, a source, ...
    result = run(
        str(path),
        *("--image", "acme/api:2.4", "--project", "api-build", "--owner", "team-a"),
        *("--build-arg", "NODE_VERSION=20", "--source-location", str(tmp_path)),
        *("--source-version", "main", "--policy", "fail-on: [CRITICAL]", "--no-auto-rebuild"),
        *("--cooldown", "30", "--test-command", "true"),
    )
    # Then the image is registered once on all three bases, with every setting given
    assert result.exit_code == 0, result.output
    assert calls == [
        {
            "image": "docker.io/acme/api:2.4",
            "bases": [
                "docker.io/library/node:20-slim",
                "docker.io/library/golang:1.23",
                "ghcr.io/astral-sh/uv:0.5.11",
            ],
            "project": "api-build",
            "owner": "team-a",
            "build_args": {"NODE_VERSION": "20"},
            "rebase_safe": False,
            "rebase_unsafe_reason": "RUN at line 6",
            "source_location": str(tmp_path),
            "source_version": "main",
            "auto_rebuild": False,
            "cooldown_seconds": 30,
            "policy": "fail-on: [CRITICAL]",
            "test_command": "true",
            "patch_by": "auto",
        }
    ]
    # And it says the runtime base's digest was recorded (its next move rebuilds the image)
    assert "Recorded the current digest of docker.io/library/node:20-slim" in result.stdout


def test_command_refuses_to_register_a_dockerfile_that_cannot_take_the_pin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a Dockerfile whose runtime FROM names its base (no ${BASE_IMAGE})
    path = write(tmp_path, ACCEPTANCE)
    calls = fake_client(monkeypatch)
    # When `discover` is asked to register it
    result = run(str(path), "--image", "a:1", "--project", "p", "--source-location", str(tmp_path))
    # Then nothing is registered, and the refusal says which line to write
    assert result.exit_code == 2 and calls == []
    assert "does not use ${BASE_IMAGE}" in result.stderr
    assert "`FROM ${BASE_IMAGE} AS runtime` on line 5" in result.stderr


def test_command_refuses_a_local_source_directory_that_does_not_exist(tmp_path: Path) -> None:
    # Given a good Dockerfile, When registered from a directory that is not there
    path = write(tmp_path, PINNABLE)
    result = run(str(path), "--image", "a:1", "--project", "p", "--source-location", str(tmp_path / "nope"))
    # Then it is a usage error naming the option
    assert result.exit_code == 2
    assert "--source-location" in result.stderr and "no such directory" in result.stderr


def test_command_reports_a_bad_dockerfile_with_file_and_line_and_exit_2(tmp_path: Path) -> None:
    # Given a Dockerfile whose FROM needs an ARG nobody gives
    path = write(tmp_path, "ARG TAG\nFROM node:${TAG}\n")
    # When `discover --dry-run --json` runs
    result = run(str(path), "--dry-run", "--json")
    # Then it exits 2 with the file, line and ARG on stderr, and the JSON has only the error
    assert result.exit_code == 2
    assert f"{path}:2: ARG TAG is used in FROM" in result.stderr
    assert json.loads(result.stdout)["dependents"] == []
    assert json.loads(result.stdout)["errors"][0]["line"] == 2


def test_command_refuses_one_image_for_several_dockerfiles(tmp_path: Path) -> None:
    # Given a directory with two Dockerfiles
    write(tmp_path, "FROM alpine:3.20\n", "Dockerfile")
    write(tmp_path, "FROM debian:12\n", "Dockerfile.dev")
    # When `discover` is given one --image for both
    result = run(str(tmp_path), "--dry-run", "--image", "acme/api:1")
    # Then it is a usage error; without --image both are listed
    assert result.exit_code == 2
    assert "2 Dockerfiles" in result.stderr
    listed = run(str(tmp_path), "--dry-run", "--json")
    assert listed.exit_code == 0, listed.output
    assert [d["bases"] for d in json.loads(listed.stdout)["dependents"]] == [
        ["docker.io/library/alpine:3.20"],
        ["docker.io/library/debian:12"],
    ]


def test_command_rejects_a_malformed_build_arg(tmp_path: Path) -> None:
    # Given a Dockerfile
    path = write(tmp_path, "FROM alpine:3.20\n")
    # When --build-arg has no `=`, Then it is a usage error on that option
    result = run(str(path), "--dry-run", "--build-arg", "NOVALUE")
    assert result.exit_code == 2
    assert "--build-arg" in result.stderr


# ---- bytes, several files, what is ignored ---------------------------------------------------


def test_a_nul_byte_does_not_cut_the_file(tmp_path: Path) -> None:
    # Given a NUL byte in a comment of the first stage, and a second stage below it
    path = tmp_path / "Dockerfile"
    path.write_bytes(b"FROM alpine:3.20 AS a\n# stray \x00 byte\nFROM debian:12\nCOPY --from=a /x /x\n")
    # When discovered, Then both stages' bases are found, as BuildKit reads the whole file
    assert refs(path) == ["docker.io/library/alpine:3.20", "docker.io/library/debian:12"]


def test_latin1_and_bom_are_read_as_bytes_and_a_bad_byte_in_a_reference_names_its_line(
    tmp_path: Path,
) -> None:
    # Given a UTF-8 BOM, a Latin-1 comment, and a FROM with a NUL inside the reference
    path = tmp_path / "Dockerfile"
    path.write_bytes(b"\xef\xbb\xbfFROM alpine:3.20\n# caf\xe9 cr\xe8me\nRUN echo \xff\n")
    # When discovered, Then the file is read as BuildKit reads it
    assert refs(path) == ["docker.io/library/alpine:3.20"]
    # And a reference that holds such a byte is refused at its line, the byte shown
    bad = tmp_path / "Bad.Dockerfile"
    bad.write_bytes(b"FROM alpine:3.20\nFROM debi\xe9n:12\n")
    message = error_of(bad)
    assert message.startswith(f"{bad}:2: FROM debi\\xe9n:12: invalid image reference")


def test_an_unset_arg_expands_to_nothing_when_the_reference_stays_valid(tmp_path: Path) -> None:
    # Given FROM alpine${SUFFIX} with SUFFIX declared but never given a value
    path = write(tmp_path, "ARG SUFFIX\nFROM alpine${SUFFIX}\n")
    # When discovered, Then BuildKit's reading (empty) is used and said
    found = discover(path)
    assert found.refs == ["docker.io/library/alpine:latest"]
    assert "ARG SUFFIX is used in FROM alpine${SUFFIX} but has no default value" in found.notes[0]


def test_a_build_arg_no_from_can_use_is_warned_about(tmp_path: Path) -> None:
    # Given an ARG declared only in a stage, and a global one
    path = write(tmp_path, "ARG TAG=3.20\nFROM alpine:${TAG}\nARG PIP_INDEX\n")
    # When build args are given for both and for one the file never declares
    found = discover(path, {"TAG": "3.19", "PIP_INDEX": "x", "NOPE": "1"})
    # Then the used one is used, and the other two are named
    assert found.refs == ["docker.io/library/alpine:3.19"]
    assert found.notes == [
        "--build-arg PIP_INDEX: no FROM can use it (ARG PIP_INDEX is declared only inside a stage)",
        "--build-arg NOPE: no FROM can use it (ARG NOPE is declared nowhere in this file)",
    ]


def test_directory_mode_finds_every_spelling_buildkit_users_write(tmp_path: Path) -> None:
    # Given lower-case and suffixed names
    for name in [
        "dockerfile",
        "web.dockerfile",
        "Containerfile.prod",
        "notes.txt",
        "dockerfile.dockerignore",
    ]:
        (tmp_path / name).write_text("FROM alpine\n")
    # When looked for, Then all Dockerfile spellings are found, ignore files and others are not
    assert sorted(p.name for p in find_dockerfiles([tmp_path])) == [
        "Containerfile.prod",
        "dockerfile",
        "web.dockerfile",
    ]


def test_command_reports_every_file_and_fails_if_any_failed(tmp_path: Path) -> None:
    # Given a good file, a bad one (line 2) and a missing path, in that order
    good = write(tmp_path, "FROM alpine:3.20\n", "a.Dockerfile")
    bad = write(tmp_path, "FROM alpine:3.20\nFROM node:${NOPE}\n", "b.Dockerfile")
    missing = tmp_path / "missing"
    # When discovered together
    result = run(str(good), str(bad), str(missing), "--dry-run", "--json")
    # Then the good file's bases and both errors are in the JSON, in order, and it exits 2
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert [d["dockerfile"] for d in report["dependents"]] == [str(good)]
    assert [(e["dockerfile"], e["line"]) for e in report["errors"]] == [(str(bad), 2), (str(missing), None)]
    # And stderr names the first bad file first
    assert result.stderr.splitlines()[0].startswith(f"Error: {bad}:2: ")


def test_command_registers_tags_only_and_says_a_pinned_base_is_not_tracked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a digest-only build stage base and a tag@digest runtime base
    text = f"ARG BASE_IMAGE=node:22@{DIGEST}\nFROM golang@{DIGEST} AS build\nFROM ${{BASE_IMAGE}}\n"
    path = write(tmp_path, text + "COPY --from=build /b /b\n")
    calls = fake_client(monkeypatch)
    # When registered
    result = run(str(path), "--image", "acme/api:1", "--project", "p", "--source-location", str(tmp_path))
    # Then only the tag is registered (the API takes tags), and the pinned base is named
    assert result.exit_code == 0, result.output
    assert calls[0]["bases"] == ["docker.io/library/node:22"]
    assert "pinned by digest alone" in result.stderr and "golang@" in result.stderr


# ---- real Dockerfiles of well-known projects (tests/data/dockerfiles, see SOURCES.md) --------

CORPUS = Path(__file__).parent.parent / "data" / "dockerfiles"
EXPECTED: dict[str, dict] = {
    name: value
    for name, value in json.loads((CORPUS / "expected.json").read_text()).items()
    if name[0] != "_"
}


def test_every_file_in_the_corpus_has_an_expectation() -> None:
    # Given the corpus folder, Then each Dockerfile in it is listed in expected.json, and back
    assert sorted(p.name for p in CORPUS.glob("*.Dockerfile")) == sorted(EXPECTED)


def test_discover_over_the_whole_folder_finds_what_docker_would_pull() -> None:
    # Given the folder of real Dockerfiles
    # When discovered as one directory
    results = {Path(r.path).name: r for r in discover_all([CORPUS])}
    # Then each file gives exactly its expected bases and runtime base, or its refusal
    assert sorted(results) == sorted(EXPECTED)
    for name, expected in EXPECTED.items():
        result = results[name]
        if "error" in expected:
            assert isinstance(result, DiscoverError), name
            assert result.line == expected["error"]["line"], name
            assert expected["error"]["reason"] in result.reason, name
        else:
            assert not isinstance(result, DiscoverError), str(result)
            assert result.refs == expected["bases"], name
            assert result.runtime_base == expected["runtime_base"], name


@pytest.mark.parametrize("name", [n for n, e in EXPECTED.items() if "error" not in e])
def test_command_on_each_good_file_exits_0(name: str) -> None:
    # Given one real Dockerfile Docker builds, When `discover --dry-run --json` runs on it
    result = CliRunner().invoke(discover_command, [str(CORPUS / name), "--dry-run", "--json"])
    # Then it exits 0 with the expected bases
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["dependents"][0]["bases"] == EXPECTED[name]["bases"]


def test_command_on_the_folder_reports_every_file_and_exits_2_for_the_refused_one() -> None:
    # When `discover --dry-run --json` runs on the folder
    result = CliRunner().invoke(discover_command, [str(CORPUS), "--dry-run", "--json"])
    # Then every good file is reported, the refused one as an error, and it exits 2
    report = json.loads(result.stdout)
    assert result.exit_code == 2
    refused = sorted(n for n, e in EXPECTED.items() if "error" in e)
    assert sorted(Path(e["dockerfile"]).name for e in report["errors"]) == refused
    assert len(report["dependents"]) == len(EXPECTED) - len(refused)


def test_real_tag_and_digest_pins_are_kept_in_full_and_their_tags_tracked() -> None:
    # Given argo-cd's Dockerfile, every base pinned as name:tag@sha256
    path = CORPUS / "argo-cd--Dockerfile.Dockerfile"
    # When `discover --dry-run --json` runs
    result = CliRunner().invoke(discover_command, [str(path), "--dry-run", "--json"])
    dependent = json.loads(result.stdout)["dependents"][0]
    # Then bases and runtime_base keep the digests, and the tags are what is tracked
    assert result.exit_code == 0, result.output
    assert all("@sha256:" in ref for ref in dependent["bases"])
    assert dependent["runtime_base"].startswith("docker.io/library/ubuntu:26.04@sha256:")
    assert dependent["tracked"] == [
        "docker.io/library/golang:1.26.5",
        "docker.io/library/ubuntu:26.04",
        "docker.io/library/node:24.19.0",
    ]
    assert dependent["pinned"] == []


def test_real_digest_only_base_is_recorded_and_not_tracked() -> None:
    # Given thanos's Dockerfile, FROM quay.io/prometheus/busybox@sha256:${SHA}
    path = CORPUS / "thanos--Dockerfile.Dockerfile"
    # When discovered, Then the base is kept in full, pinned, and nothing is tracked
    found = discover(path)
    assert found.pinned_bases() == found.refs
    assert found.tracked_bases() == []


def test_buildkit_s_own_dockerfile_has_a_different_runtime_base_per_platform() -> None:
    # Given BuildKit's Dockerfile: FROM alpine-$TARGETARCH picks alpine:edge@… for riscv64
    path = CORPUS / "buildkit--Dockerfile.Dockerfile"
    # When discovered for linux/amd64 and linux/riscv64
    found = discover(path, platforms=["linux/amd64", "linux/riscv64"])
    # Then each platform's runtime base is its own, and the riscv64 one is marked as such
    edge = next(b for b in found.bases if b.ref.startswith("docker.io/library/alpine:edge@"))
    assert edge.platforms == ("linux/riscv64",)
    assert found.runtime_by_platform == {
        "linux/amd64": "docker.io/library/alpine:3.18",
        "linux/riscv64": edge.ref,
    }
    assert any("$TARGETARCH was not passed" in note for note in found.notes)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        # UTF-16 (a Windows editor's "Unicode"): BuildKit reads bytes, so the first word is junk
        ("FROM alpine\n".encode("utf-16"), "1: unknown instruction: \\xff\\xfeF\\x00R\\x00O\\x00M\\x00"),
        # a NUL inside a reference: an invalid reference at its line, the byte shown as \x00
        (
            b"FROM alpine\x00:3.20\n",
            "1: FROM alpine\\x00:3.20: invalid image reference 'alpine\\x00:3.20': invalid reference format",
        ),
    ],
)
def test_bytes_buildkit_cannot_build_are_refused_at_their_line(
    tmp_path: Path, data: bytes, message: str
) -> None:
    # Given a Dockerfile whose bytes make an instruction or a reference BuildKit refuses
    path = tmp_path / "Dockerfile"
    path.write_bytes(data)
    # When discovered, Then it is refused with the line and the bytes as they are
    assert error_of(path) == f"{path}:{message}"


def test_command_platform_option_discovers_each_platform(tmp_path: Path) -> None:
    # Given a runtime base chosen by TARGETARCH
    path = write(tmp_path, "FROM example.com/base-${TARGETARCH}:1\n")
    # When `discover --platform linux/amd64,linux/arm64 --dry-run --json` runs
    result = run(str(path), "--dry-run", "--json", "--platform", "linux/amd64,linux/arm64")
    # Then both platforms' bases are reported, each marked, with each runtime base
    assert result.exit_code == 0, result.output
    dependent = json.loads(result.stdout)["dependents"][0]
    assert dependent["platforms"] == ["linux/amd64", "linux/arm64"]
    assert [(f["ref"], f["platforms"]) for f in dependent["found"]] == [
        ("example.com/base-amd64:1", ["linux/amd64"]),
        ("example.com/base-arm64:1", ["linux/arm64"]),
    ]
    assert dependent["runtime_by_platform"] == {
        "linux/amd64": "example.com/base-amd64:1",
        "linux/arm64": "example.com/base-arm64:1",
    }
    # And a malformed platform is a usage error on that option
    bad = run(str(path), "--dry-run", "--platform", "linux")
    assert bad.exit_code == 2 and "--platform" in bad.stderr
