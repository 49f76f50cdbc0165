"""How a rebuild patches its image: rebase or rebuild, the fallback and its reason, on the record
and in the alert; and discover's rebase-safe marking."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import FakeBuilds, InMemoryStore

from patchprop.domain.alerts import Alert
from patchprop.domain.errors import BuildThrottled, RegistryUnavailable
from patchprop.domain.models import Dependent, PatchRequest, RebuildRequest
from patchprop.domain.rebase import Rebase, RebaseRefused
from patchprop.domain.records import Rebuild, RebuildStatus
from patchprop.domain.refs import ImageRef
from patchprop.logic.rebase import CANDIDATE_VAR, method_note
from patchprop.logic.start import start_rebuild
from patchprop_cli.discover import discover

PROJECT = "patchprop-rebuild"
OLD, NEW, CANDIDATE = ("sha256:" + c * 64 for c in "01c")


class FakeRebaser:
    """Rebases to CANDIDATE, or raises what it is given; records what it was asked."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.asked: list[tuple[ImageRef, ImageRef, str, str | None]] = []

    def rebase(self, image: ImageRef, base: ImageRef, new_digest: str, previous_digest: str | None) -> Rebase:
        self.asked.append((image, base, new_digest, previous_digest))
        if self.error:
            raise self.error
        return Rebase(digest=CANDIDATE, mounted=2)


def request(
    patch_by: str = "auto", rebase_safe: bool | None = True, why: str | None = None
) -> RebuildRequest:
    dependent = Dependent(
        image="registry.example/acme/app:1", project=PROJECT, bases=["registry.example/acme/golden:1"],
        patch_by=patch_by, rebase_safe=rebase_safe, rebase_unsafe_reason=why,  # type: ignore[arg-type]
    )  # fmt: skip
    patch = PatchRequest(
        base="registry.example/acme/golden:1", digest=NEW, previous_digest=OLD, detected_by="poller"
    )
    return RebuildRequest.for_dependent(dependent, patch)


def start(req: RebuildRequest, rebaser: FakeRebaser | None) -> tuple[Rebuild, FakeBuilds]:
    builds = FakeBuilds()
    rebuild = start_rebuild(
        req, store=InMemoryStore(), builds=builds, allowed_projects={PROJECT}, rebaser=rebaser
    )
    assert rebuild is not None
    return rebuild, builds


def test_a_rebase_safe_image_is_rebased_and_its_build_verifies_the_candidate_only() -> None:
    # Given a rebase-safe image under auto
    rebaser = FakeRebaser()
    # When its rebuild starts
    rebuild, builds = start(request(), rebaser)
    # Then it was rebased from the old base digest to the new one, and the build verifies it
    ((image, base, new, old),) = rebaser.asked
    assert (str(image), str(base), new, old) == (
        "registry.example/acme/app:1",
        "registry.example/acme/golden:1",
        NEW,
        OLD,
    )
    assert builds.started[0]["env"][CANDIDATE_VAR] == CANDIDATE
    assert (rebuild.method, rebuild.fallback_reason) == ("rebased", None)


@pytest.mark.parametrize(
    ("req", "error", "reason"),
    [
        (request(rebase_safe=False, why="RUN at line 4"), None, "not rebase-safe: RUN at line 4"),
        (
            request(),
            RebaseRefused("the image's first layers are not the old base's"),
            "rebase refused: the image's",
        ),
        (request(), RegistryUnavailable("registry down"), "the registry failed the rebase: registry down"),
    ],
)
def test_under_auto_what_cannot_be_rebased_is_rebuilt_and_says_why(
    req: RebuildRequest, error: Exception | None, reason: str
) -> None:
    rebuild, builds = start(req, FakeRebaser(error))
    assert CANDIDATE_VAR not in builds.started[0]["env"]
    assert rebuild.method == "rebuilt" and (rebuild.fallback_reason or "").startswith(reason)


def test_under_auto_an_image_never_marked_is_rebuilt_without_a_fallback_note() -> None:
    rebuild, builds = start(request(rebase_safe=None), FakeRebaser())
    assert CANDIDATE_VAR not in builds.started[0]["env"]
    assert (rebuild.method, rebuild.fallback_reason) == ("rebuilt", None)


def test_rebuild_never_rebases_and_says_no_fallback() -> None:
    rebaser = FakeRebaser()
    rebuild, builds = start(request(patch_by="rebuild"), rebaser)
    assert not rebaser.asked and len(builds.started) == 1
    assert (rebuild.method, rebuild.fallback_reason) == ("rebuilt", None)


def test_under_rebase_a_refused_rebase_fails_without_a_build_and_a_registry_outage_is_retried() -> None:
    # Given --patch-by rebase and a rebase that is refused
    rebuild, builds = start(request(patch_by="rebase"), FakeRebaser(RebaseRefused("a platform dropped")))
    # Then nothing is built and the rebuild failed with the reason
    assert not builds.started
    assert rebuild.status is RebuildStatus.NOT_STARTED and rebuild.method == "rebased"
    assert "a platform dropped" in (rebuild.reason or "")
    # And a registry that fails for now is "try again later"
    with pytest.raises(BuildThrottled):
        start(request(patch_by="rebase"), FakeRebaser(RegistryUnavailable("503")))


def test_the_alert_says_which_method_ran_and_why() -> None:
    # Given a rebased and a rebuilt-instead rebuild, finished
    rebased, _ = start(request(), FakeRebaser())
    rebuilt, _ = start(request(rebase_safe=False, why="RUN at line 4"), FakeRebaser())
    # Then each one's alert note says how it was patched
    assert method_note(rebased) == [
        "Rebased: its own layers were put on the new base with the registry API (no build)."
    ]
    assert method_note(rebuilt) == ["Rebuilt, not rebased: not rebase-safe: RUN at line 4."]
    done = rebased.model_copy(update={"status": RebuildStatus.SUCCEEDED})
    assert Alert.from_rebuild(done).method == "rebased"


@pytest.mark.parametrize(
    ("text", "unsafe"),
    [
        ('ARG BASE_IMAGE=a:1\nFROM ${BASE_IMAGE}\nCOPY app /app\nENV A=1\nUSER 1000\nCMD ["/app"]\n', None),
        ("FROM golang:1 AS build\nRUN go build\nFROM a:1\nCOPY --from=build /out /out\n", None),
        ("FROM a:1\nCOPY app /app\nRUN chmod +x /app\n", "RUN at line 3"),
        ("FROM a:1 AS base\nRUN useradd x\nFROM base\nCOPY app /app\n", "RUN at line 2"),
        (
            "FROM a:1\nCOPY --chown=app:app app /app\n",
            "COPY --chown=app:app at line 2 reads the base's users",
        ),
        ("FROM a:1\nCOPY --chown=1000:1000 app /app\n", None),
        ("FROM scratch\nCOPY app /app\n", "FROM scratch at line 1: no base to rebase onto"),
    ],
)
def test_discover_marks_an_image_rebase_safe_only_when_its_final_stage_does_not_read_the_base(
    tmp_path: Path, text: str, unsafe: str | None
) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(text)
    found = discover(path)
    assert found.rebase_unsafe == unsafe and found.rebase_safe is (unsafe is None)


def test_patchprop_rebuilds_shows_the_method_and_the_fallback_reason() -> None:
    from patchprop_cli.rebuilds_cmd import rebuild_table

    # Given a rebased rebuild and one rebuilt because it was not rebase-safe
    common = {
        "image": "acme/a:1",
        "base": "acme/b:1",
        "base_digest": NEW,
        "status": "SUCCEEDED",
        "build_id": "p:1",
    }
    table = rebuild_table(
        [
            {**common, "method": "rebased"},
            {**common, "method": "rebuilt", "fallback_reason": "not rebase-safe: RUN at line 4"},
        ]
    )
    # Then the table has a METHOD column saying each, with the reason
    header, first, second = table.splitlines()[:3]
    assert "METHOD" in header.split()
    assert " rebased " in first and "rebuilt (not rebase-safe: RUN at line 4)" in second


def test_a_manifest_of_an_unexpected_shape_falls_back_to_a_rebuild() -> None:
    rebuild, builds = start(request(), FakeRebaser(KeyError("size")))
    assert rebuild.method == "rebuilt" and "could not be read" in (rebuild.fallback_reason or "")
    assert len(builds.started) == 1
