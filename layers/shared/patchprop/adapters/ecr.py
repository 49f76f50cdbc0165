"""Tag moves in Amazon ECR: ecr:PutImage with the manifest ECR already holds (no layer copied).

The same rule as `RegistryWriter.move_tag`: the move names the digest the tag had when the
rebuild started and is refused (`TagMoved`) when the tag holds anything else; ECR has no
compare-and-swap either, so the same short window between the check and the PutImage remains.
PutImage with `imageDigest` makes ECR check that the manifest bytes are the candidate's.
An index (manifest list) moves whole: it is one image in ECR.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from patchprop.adapters.registry import MANIFEST_MEDIA_TYPES
from patchprop.adapters.registry_write import WRITE_ATTEMPTS
from patchprop.domain.errors import ManifestNotFound, RegistryUnavailable, TagMoved, TagMoveRefused
from patchprop.domain.refs import ImageRef

RETRYABLE = {
    "ThrottlingException",
    "ServerException",
    "ServiceUnavailableException",
    "LimitExceededException",
}


def _registry_id(ref: ImageRef) -> str:
    """`123456789012.dkr.ecr.eu-west-1.amazonaws.com` -> `123456789012`."""
    return ref.registry.split(".", 1)[0]


class EcrTagMover:
    """Moves ECR tags to digests already in the repository."""

    def __init__(self, client: Any | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client or boto3.client("ecr")
        self.sleep = sleep

    def tag_digest(self, repository: ImageRef, tag: str) -> str | None:
        """The digest `tag` holds now, or None when there is no such tag."""
        found = self._get(repository, {"imageTag": tag})
        return str(found["imageId"]["imageDigest"]) if found else None

    def move_tag(self, repository: ImageRef, tag: str, digest: str, expect_current: str | None) -> bool:
        """Point `tag` at `digest`; same contract as `RegistryWriter.move_tag`."""
        candidate = self._get(repository, {"imageDigest": digest})
        if candidate is None:
            raise ManifestNotFound(f"no image {digest} in {repository.name}")
        for attempt in range(WRITE_ATTEMPTS):
            current = self.tag_digest(repository, tag)
            if current == digest:
                return attempt > 0
            if current != expect_current:
                raise TagMoved(
                    f"{repository.name}:{tag} is at {current or 'no digest'}, not "
                    f"{expect_current or 'absent'} as when the rebuild started: not moving it to {digest}",
                    current,
                )
            arguments = {
                "registryId": _registry_id(repository),
                "repositoryName": repository.repository,
                "imageManifest": candidate["imageManifest"],
                "imageTag": tag,
                "imageDigest": digest,
            }
            if candidate.get("imageManifestMediaType"):
                arguments["imageManifestMediaType"] = candidate["imageManifestMediaType"]
            try:
                self.client.put_image(**arguments)
                return True
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code == "ImageAlreadyExistsException":
                    return False  # the tag is on this digest already
                if code not in RETRYABLE:
                    raise TagMoveRefused(
                        f"ECR refused to move {repository.name}:{tag} to {digest}: {code}"
                    ) from exc
            except BotoCoreError:
                pass
            self.sleep(min(0.5 * 2**attempt, 4.0))
        raise RegistryUnavailable(
            f"ECR failed {WRITE_ATTEMPTS} times to move {repository.name}:{tag} to {digest}"
        )

    def _get(self, repository: ImageRef, image_id: dict[str, str]) -> dict[str, Any] | None:
        try:
            answer = self.client.batch_get_image(
                registryId=_registry_id(repository),
                repositoryName=repository.repository,
                imageIds=[image_id],
                acceptedMediaTypes=list(MANIFEST_MEDIA_TYPES),
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "RepositoryNotFoundException":
                raise ManifestNotFound(f"no ECR repository {repository.name}") from exc
            raise RegistryUnavailable(f"ECR BatchGetImage on {repository.name} failed: {code}") from exc
        except BotoCoreError as exc:
            raise RegistryUnavailable(f"ECR unreachable: {type(exc).__name__}") from exc
        images = answer.get("images") or []
        return dict(images[0]) if images else None
