"""`make demo`: the patch path on this machine, against moto and a real local registry.

A base image is pushed to Debian's docker-registry; three images are registered as built on
it; the base is re-published; a Docker Hub webhook for it goes through the webhook handler as
an API Gateway event; the planner and rebuilder run from their SQS queues; CodeBuild (moto's)
starts one build per dependent pinned to the new digest; the build-state events go through
the build-events handler; and the SNS messages it publishes are printed.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from patchprop import wiring
from patchprop.models import Dependent
from patchprop.store import Store
from patchprop_cli.local_aws import LocalAws
from patchprop_cli.oci import push_image
from patchprop_cli.registry_server import LocalRegistry

PROJECTS = ["patchprop-demo-rebuild", "team-payments-rebuild"]
# The handlers' JSON logs and metrics would bury the story; warnings and errors still show.
QUIET = {"LOG_LEVEL": "WARNING", "POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"}
BASE_REPO = "acme/golden-python"
DEPENDENTS = [
    ("acme/payments-api:2.4", "team-payments-rebuild", "team-payments"),
    ("acme/checkout-web:1.9", "patchprop-demo-rebuild", "team-checkout"),
    ("acme/report-worker:0.7", "patchprop-demo-rebuild", "team-data"),
]


def step(text: str) -> None:
    click.secho(f"\n==> {text}", fg="cyan", bold=True)


def show(text: str) -> None:
    click.echo(f"    {text}")


def run_demo(workdir: Path | None = None) -> int:
    """Run the whole demo; returns the number of SNS messages published (one per rebuild)."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="patchprop-demo-") as tmp:
        root = workdir or Path(tmp)
        step("Starting a real OCI registry (docker-registry) and moto's AWS server on 127.0.0.1")
        with (
            LocalRegistry(root / "registry") as registry,
            LocalAws({"RebuildProjects": ",".join(PROJECTS)}, env=QUIET) as aws,
        ):
            show(f"registry: http://{registry.address}   AWS endpoint: {aws.endpoint_url}")
            stack = aws.stack
            assert stack is not None
            wiring.reset()
            codebuild = aws.client("codebuild")
            for project in PROJECTS:  # the projects the user named in RebuildProjects
                codebuild.create_project(
                    name=project,
                    source={"type": "S3", "location": "patchprop-demo/source.zip"},
                    artifacts={"type": "NO_ARTIFACTS"},
                    serviceRole="arn:aws:iam::123456789012:role/demo",
                    environment={
                        "type": "LINUX_CONTAINER",
                        "image": "aws/codebuild/standard:7.0",
                        "computeType": "BUILD_GENERAL1_SMALL",
                    },
                )
            outcomes = _subscribe(aws, stack.refs["OutcomeTopic"])

            base_ref = f"{registry.address}/{BASE_REPO}:3.13"
            step(f"Pushing base image {base_ref}")
            first = push_image(registry.address, BASE_REPO, "3.13", {"etc/os-release": b"PATCH_LEVEL=1\n"})
            show(f"digest {first}")

            step("Registering three images built FROM it")
            store = Store(stack.refs["PatchpropTable"])
            for image, project, owner in DEPENDENTS:
                store.put_dependent(Dependent(image=image, project=project, bases=[base_ref], owner=owner))
                show(f"{image:28} project={project:24} owner={owner}")
            aws.run_schedules()  # the first poll learns the base's current digest
            show(f"baseline digest recorded: {store.get_base(base_ref).digest}")  # type: ignore[union-attr]

            step("Re-publishing the base with a security fix (same tag, new content)")
            second = push_image(registry.address, BASE_REPO, "3.13", {"etc/os-release": b"PATCH_LEVEL=2\n"})
            show(f"{first} -> {second}")

            step(
                "Docker Hub delivers the push webhook (twice, as it may) to POST /webhooks/dockerhub/{token}"
            )
            token = json.loads(
                aws.client("secretsmanager").get_secret_value(SecretId=stack.refs["WebhookSecret"])[
                    "SecretString"
                ]
            )["current"]
            body = json.dumps(
                {
                    "callback_url": "https://registry.hub.docker.com/u/acme/hook/1/",
                    "push_data": {"tag": "3.13", "pushed_at": int(time.time()), "pusher": "acme-ci"},
                    "repository": {
                        "repo_name": f"{registry.address}/{BASE_REPO}",
                        "name": "golden-python",
                        "namespace": "acme",
                    },
                }
            )
            for attempt in (1, 2):
                answer = aws.call_api("POST", f"/webhooks/dockerhub/{token}", body)
                show(f"delivery {attempt}: HTTP {answer['statusCode']} {answer['body']}")
            wrong = aws.call_api("POST", "/webhooks/dockerhub/not-the-token", body)
            show(f"with a wrong token: HTTP {wrong['statusCode']} {wrong['body']}")

            step("Planner and rebuilder run from their SQS queues")
            delivered = aws.drain()
            show(f"{delivered} SQS messages delivered")
            rebuilds = [
                r
                for image, _, _ in DEPENDENTS
                for r in store.rebuilds_of(Dependent(image=image, project="x1", bases=[base_ref]).image)
            ]
            for rebuild in rebuilds:
                show(f"{rebuild.image:38} build {rebuild.build_id}")
                show(f"{'':38} BASE_IMAGE={rebuild.pinned_base}")

            step("CodeBuild reports the builds (moto's CodeBuild finishes at once)")
            builds = codebuild.batch_get_builds(ids=[r.build_id for r in rebuilds])["builds"]
            for build in builds:
                detail = {
                    "build-status": build["buildStatus"],
                    "build-id": build["arn"],
                    "project-name": build["projectName"],
                    "additional-information": {
                        "environment": {
                            "environment-variables": build.get("environment", {}).get(
                                "environmentVariables", []
                            )
                        }
                    },
                }
                for function, answer in aws.put_event(
                    "aws.codebuild", "CodeBuild Build State Change", detail
                ):
                    show(f"{function}: {answer}")

            step("SNS messages published to the outcome topic")
            messages = _receive(aws, outcomes)
            for message in messages:
                attributes = {k: v["Value"] for k, v in message["MessageAttributes"].items()}
                show(f"Subject: {message['Subject']}")
                show(f"Attributes: {json.dumps(attributes)}")
                for line in message["Message"].splitlines():
                    show(f"  | {line}")
            step(
                f"Done in {time.monotonic() - started:.1f}s: {len(rebuilds)} rebuilds started, "
                f"{len(messages)} SNS messages. Registry and AWS stopped."
            )
            return len(messages)


def _subscribe(aws: LocalAws, topic_arn: str) -> str:
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName="demo-outcomes")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    aws.client("sns").subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn)
    return url


def _receive(aws: LocalAws, url: str) -> list[dict[str, Any]]:
    sqs = aws.client("sqs")
    found: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
        if not got.get("Messages"):
            return found
        found += [json.loads(m["Body"]) for m in got["Messages"]]
        for m in got["Messages"]:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
