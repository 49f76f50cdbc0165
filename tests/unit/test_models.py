"""Models at the boundaries: normalization, validation, stable rebuild ids."""

import pytest
from pydantic import ValidationError

from patchprop.domain.events import BuildStateChange, DockerHubPush
from patchprop.domain.models import Dependent, PatchRequest, RebuildRequest, rebuild_id_for
from patchprop.domain.records import RebuildStatus

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


def test_dependent_normalizes_image_and_bases():
    # Given short references, When a dependent is validated, Then they are normalized like Docker does
    dependent = Dependent(image="acme/app:1", project="rebuild-app", bases=["node:22", "dhi.io/python:3.13"])
    assert dependent.image == "docker.io/acme/app:1"
    assert dependent.bases == ["docker.io/library/node:22", "dhi.io/python:3.13"]


def test_dependent_refuses_digest_bases_and_bad_project():
    # A base pinned by digest never moves, so tracking it makes no sense
    with pytest.raises(ValidationError, match="must name a tag"):
        Dependent(image="acme/app:1", project="p1", bases=[f"node@{D1}"])
    with pytest.raises(ValidationError) as info:
        Dependent(image="acme/app:1", project="bad project!", bases=["node:22"])
    assert info.value.errors()[0]["loc"] == ("project",)


def test_rebuild_id_is_stable_per_image_base_and_digest():
    a = rebuild_id_for("docker.io/acme/app:1", "docker.io/library/node:22", D1)
    assert a == rebuild_id_for("docker.io/acme/app:1", "docker.io/library/node:22", D1)
    assert a != rebuild_id_for("docker.io/acme/app:1", "docker.io/library/node:22", D2)
    assert a != rebuild_id_for("docker.io/acme/app:2", "docker.io/library/node:22", D1)


def test_a_rollback_patch_has_its_own_rebuild_ids_and_others_keep_theirs():
    # Given the same dependent patched onto the same base digest, once as a base move, once after
    # a rollback undid a promotion, and once after another rollback
    dependent = Dependent(image="acme/app:1", project="p1", bases=["node:22"])
    moved = PatchRequest(base="node:22", digest=D1, detected_by="poller")
    rolled = moved.model_copy(update={"rollback_of": "rb-1", "detected_by": "person"})
    again = moved.model_copy(update={"rollback_of": "rb-2", "detected_by": "person"})
    ids = [RebuildRequest.for_dependent(dependent, p).rebuild_id for p in (moved, rolled, again)]
    # Then each is its own rebuild, and the base move's id is what it always was
    assert len(set(ids)) == 3
    assert ids[0] == rebuild_id_for("docker.io/acme/app:1", "docker.io/library/node:22", D1)


def test_rebuild_request_pins_base_by_digest():
    dependent = Dependent(
        image="acme/app:1", project="p1", bases=["node:22"], owner="team-a", build_args={"PY": "3.13"}
    )
    patch = PatchRequest(base="node:22", digest=D2, previous_digest=D1, detected_by="poller")
    request = RebuildRequest.for_dependent(dependent, patch)
    assert request.pinned_base == f"docker.io/library/node@{D2}"
    assert request.rebuild_id == rebuild_id_for("docker.io/acme/app:1", "docker.io/library/node:22", D2)
    assert (request.owner, request.build_args, request.previous_digest) == ("team-a", {"PY": "3.13"}, D1)


def test_dockerhub_push_requires_repo_name_and_tag():
    with pytest.raises(ValidationError) as info:
        DockerHubPush.model_validate({"push_data": {"tag": "1"}, "repository": {}})
    assert info.value.errors()[0]["loc"] == ("repository", "repo_name")
    with pytest.raises(ValidationError) as info:
        DockerHubPush.model_validate({"push_data": {"tag": 3}, "repository": {"repo_name": "a/b"}})
    assert info.value.errors()[0]["loc"] == ("push_data", "tag")


def test_build_state_change_reads_env_and_status(sample_build_event):
    detail = BuildStateChange.model_validate(sample_build_event["detail"])
    assert detail.build_status == "SUCCEEDED"
    assert detail.env(
        "PATCHPROP_REBUILD_ID",
    ).startswith("rb-")
    assert detail.env("NOPE") is None
    assert RebuildStatus(detail.build_status).final


@pytest.fixture
def sample_build_event():
    from support import sample_event

    return sample_event("build_state_succeeded.json")
