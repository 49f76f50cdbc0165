"""What Amazon ECR sends on EventBridge: "ECR Image Action" (a push or a delete of an image)."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from patchprop.domain.models import Digest, DomainModel

ECR_SOURCE = "aws.ecr"
IMAGE_ACTION = "ECR Image Action"


class EcrImageAction(DomainModel):
    """`detail` of an "ECR Image Action" event. A push by digest alone has no `image-tag`."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    action_type: str = Field(alias="action-type")
    result: str
    repository_name: str = Field(alias="repository-name", min_length=1, max_length=256)
    image_digest: Digest | None = Field(None, alias="image-digest")
    image_tag: str | None = Field(None, alias="image-tag", max_length=300)

    @property
    def tagged_push(self) -> bool:
        return self.action_type == "PUSH" and self.result == "SUCCESS" and bool(self.image_tag)


def ecr_host(account: str, region: str) -> str:
    """The registry host of an account's private ECR in a region."""
    return f"{account}.dkr.ecr.{region}.amazonaws.com"
