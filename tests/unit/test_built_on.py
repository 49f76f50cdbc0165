"""Registering an image built on an older digest of its base says so (issue 11, item 2): the
image's own base.digest annotation is compared with the base's current digest."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from fakes import FakeRegistry, InMemoryStore

from patchprop.domain.errors import ManifestNotFound
from patchprop.domain.models import Dependent
from patchprop.domain.rebase import BASE_DIGEST, BASE_NAME
from patchprop.domain.refs import ImageRef
from patchprop.logic.baseline import behind_bases, record_baselines

BASE = "docker.io/acme/base:1"
OTHER = "docker.io/acme/tools:2"
APP = "docker.io/acme/app:1"
D0, D1, D2 = ("sha256:" + c * 64 for c in "012")
PROJECT = "patchprop-rebuild"


@dataclass
class FakeBuiltOn:
    """Images to the base annotations they carry; an image not listed is not in the registry."""

    annotations: dict[str, Mapping[str, str]] = field(default_factory=dict)

    def base_annotations(self, image: ImageRef) -> Mapping[str, str]:
        if str(image) not in self.annotations:
            raise ManifestNotFound(f"no manifest for {image}")
        return self.annotations[str(image)]


def registered(bases: list[str], digests: dict[str, str]) -> tuple[Dependent, InMemoryStore]:
    store = InMemoryStore()
    dependent = Dependent(image=APP, project=PROJECT, bases=bases)
    store.put_dependent(dependent)
    record_baselines(dependent, store=store, registry=FakeRegistry(digests))
    return dependent, store


def test_an_image_built_on_an_older_digest_is_behind_with_a_warning_naming_both() -> None:
    # Given a base at D1 now and an image annotated as built on D0
    dependent, store = registered([BASE], {BASE: D1})
    built_on = FakeBuiltOn({APP: {BASE_NAME: BASE, BASE_DIGEST: D0}})
    # When registration compares them
    behind, warnings = behind_bases(dependent, store=store, built_on=built_on)
    # Then the base is named as behind, with both digests in one warning
    assert behind == [BASE]
    assert len(warnings) == 1
    assert BASE in warnings[0] and D0 in warnings[0] and D1 in warnings[0]


def test_an_image_on_the_current_digest_is_not_behind() -> None:
    dependent, store = registered([BASE], {BASE: D1})
    built_on = FakeBuiltOn({APP: {BASE_NAME: BASE, BASE_DIGEST: D1}})
    assert behind_bases(dependent, store=store, built_on=built_on) == ([], [])


def test_an_image_without_the_annotation_or_not_pushed_says_nothing_new() -> None:
    dependent, store = registered([BASE], {BASE: D1})
    assert behind_bases(dependent, store=store, built_on=FakeBuiltOn({APP: {}})) == ([], [])
    assert behind_bases(dependent, store=store, built_on=FakeBuiltOn()) == ([], [])


def test_with_several_bases_the_annotated_name_picks_the_one_compared() -> None:
    # Given two bases, the image annotated as built on OTHER at its current digest
    dependent, store = registered([BASE, OTHER], {BASE: D1, OTHER: D2})
    current = FakeBuiltOn({APP: {BASE_NAME: OTHER, BASE_DIGEST: D2}})
    # Then nothing is behind (BASE's D1 is not compared with OTHER's digest)
    assert behind_bases(dependent, store=store, built_on=current) == ([], [])
    # And when it is annotated on an older digest of OTHER, only OTHER is behind
    older = FakeBuiltOn({APP: {BASE_NAME: OTHER, BASE_DIGEST: D0}})
    assert behind_bases(dependent, store=store, built_on=older)[0] == [OTHER]
    # And without a name, several bases cannot be told apart: nothing is claimed
    unnamed = FakeBuiltOn({APP: {BASE_DIGEST: D0}})
    assert behind_bases(dependent, store=store, built_on=unnamed) == ([], [])


def test_a_base_whose_digest_is_unknown_is_not_claimed_behind() -> None:
    # Given a base the registry did not have at registration (no digest recorded)
    store = InMemoryStore()
    dependent = Dependent(image=APP, project=PROJECT, bases=[BASE])
    store.put_dependent(dependent)
    built_on = FakeBuiltOn({APP: {BASE_NAME: BASE, BASE_DIGEST: D0}})
    assert behind_bases(dependent, store=store, built_on=built_on) == ([], [])
