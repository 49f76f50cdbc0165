"""`patchprop register|update|list|show|remove|bases|rebuilds|graph` over HTTP against the real API handler.

A small HTTP server on 127.0.0.1 turns each request into the API Gateway event of the template's
matching route (LocalAws's routing) and invokes the API function on moto, as `patchprop local` does.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, quote, urlencode, urlsplit

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from click.testing import CliRunner, Result
from support import PROJECTS

from patchprop.adapters.dynamodb import Store
from patchprop.domain.models import PatchRequest, RebuildRequest
from patchprop.domain.records import Finish, Rebuild, RebuildStatus
from patchprop_cli.client import ApiClient, is_local, region_of, register_dependent, resolve_api_url
from patchprop_cli.main import cli
from patchprop_local.aws import LocalAws
from patchprop_local.lambdas import api_event
from patchprop_local.template import Stack

pytestmark = pytest.mark.integration

NODE = "docker.io/library/node:22"
GOLDEN = "docker.io/acme/golden:1"
APP = "docker.io/acme/app:1"
D1 = "sha256:" + "1" * 64


class ApiServer:
    """The template's API routes on 127.0.0.1, each request handed to its function as an event."""

    def __init__(self, stack: Stack) -> None:
        # Metrics are printed (EMF) to whatever sys.stdout is then: a CliRunner's, mid-test.
        self.local = LocalAws({}, env={"POWERTOOLS_METRICS_DISABLED": "true"})
        self.local.stack = stack  # moto is already up (the `aws` fixture): route and invoke only
        # Loaded now, so the handlers' loggers write to the test's stdout, not into a CliRunner's.
        for route in self.local.routes():
            self.local.handler(route.function)
        self.received: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        self._thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    def __enter__(self) -> ApiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.shutdown()
        self.http.server_close()
        self._thread.join(timeout=5)

    def answer(self, method: str, raw_path: str, headers: dict[str, str], body: str | None) -> dict[str, Any]:
        self.received.append({"method": method, "path": raw_path, "headers": headers, "body": body})
        split = urlsplit(raw_path)
        query = parse_qs(split.query, keep_blank_values=True)
        for route in self.local.routes():
            params = route.match(method, split.path)
            if params is None:
                continue
            event = api_event(method, split.path, route.resource, params, body, headers)
            event["queryStringParameters"] = {k: v[-1] for k, v in query.items()} or None
            event["multiValueQueryStringParameters"] = query or None
            with self._lock:
                return dict(self.local.invoke(route.function, event))
        return {"statusCode": 404, "body": json.dumps({"error": "no such route"})}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else None
                answer = server.answer(self.command, self.path, dict(self.headers.items()), body)
                data = (answer.get("body") or "").encode()
                self.send_response(answer["statusCode"])
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = _serve  # http.server's method names

            def log_message(self, format: str, *args: Any) -> None:
                return  # quiet: no access log in the test output

        return Handler


@pytest.fixture
def api(aws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[ApiServer]:
    """The API on 127.0.0.1, named by PATCHPROP_API_URL; the working directory has no local.json."""
    monkeypatch.chdir(tmp_path)
    with ApiServer(aws) as server:
        monkeypatch.setenv("PATCHPROP_API_URL", server.url)
        yield server


@pytest.fixture
def store(aws) -> Store:
    return Store(aws.refs["PatchpropTable"])


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def register(image: str, *bases: str, project: str = PROJECTS[0], extra: tuple[str, ...] = ()) -> Result:
    base_args = [arg for base in bases for arg in ("--base", base)]
    return run("register", "--image", image, *base_args, "--project", project, *extra)


def record_rebuild(store: Store, image: str, base: str, status: RebuildStatus) -> str:
    dependent = store.get_dependent(image)
    assert dependent is not None
    patch = PatchRequest(
        base=base, digest=D1, detected_by="poller", detected_at=datetime(2026, 1, 1, tzinfo=UTC)
    )
    request = RebuildRequest.for_dependent(dependent, patch)
    store.record_started(Rebuild.started(request, "patchprop-rebuild:1"))
    store.record_finished(request.rebuild_id, Finish(status=status, build_id="patchprop-rebuild:1"))
    return request.rebuild_id


# ---------------------------------------------------------------- register


def test_register_writes_a_dependent_that_planning_finds(api: ApiServer, store: Store) -> None:
    # Given the API
    # When an image is registered on two bases with an owner, a build arg and a cooldown
    result = register(
        "acme/app:1",
        "node:22",
        "dhi.io/python:3.13",
        extra=("--owner", "team-a", "--build-arg", "PY=3.13", "--cooldown", "600"),
    )
    # Then it says so, and planning finds it through each base
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"registered {APP} on {NODE}, dhi.io/python:3.13 (CodeBuild project")
    assert [d.image for d in store.dependents_of(NODE)] == [APP]
    assert [(d.build_args, d.cooldown_seconds) for d in store.dependents_of("dhi.io/python:3.13")] == [
        ({"PY": "3.13"}, 600)
    ]
    assert sorted(b.ref for b in store.list_bases()) == ["dhi.io/python:3.13", NODE]
    # and it went through the API, not straight to the table
    assert [(r["method"], r["path"]) for r in api.received] == [("POST", "/dependents")]


def test_reregistering_with_fewer_bases_removes_the_old_edge(api: ApiServer, store: Store) -> None:
    # Given an image registered on two bases
    register("acme/app:1", "node:22", "node:24")
    # When it is registered again on one of them
    result = register("acme/app:1", "node:24")
    # Then it says it was updated, and planning no longer finds it through the other
    assert result.output.startswith(f"updated {APP}")
    assert list(store.dependents_of(NODE)) == []
    assert [d.image for d in store.dependents_of("docker.io/library/node:24")] == [APP]


@pytest.mark.parametrize(
    ("image", "base", "project", "extra", "option", "says"),
    [
        ("Bad:x", "node:22", PROJECTS[0], (), "--image", "invalid image reference 'Bad:x'"),
        ("a/b:1", "node@sha256:" + "a" * 64, PROJECTS[0], (), "--base", "must name a tag, not a digest"),
        ("a/b:1", "node:22", "bad project", (), "--project", "String should match pattern"),
        ("a/b:1", "node:22", "other-project", (), "--project", "is not one this stack may start"),
        ("a/b:1", "node:22", PROJECTS[0], ("--build-arg", "NOEQUALS"), "--build-arg", "is not NAME=VALUE"),
        (
            "a/b:1",
            "node:22",
            PROJECTS[0],
            ("--policy", "fail_on=severe"),
            "--policy",
            "'severe' is not a severity",
        ),
    ],
    ids=["bad-image", "digest-base", "bad-project", "forbidden-project", "bad-build-arg", "bad-policy"],
)
def test_bad_input_names_the_option_and_writes_nothing(
    api: ApiServer,
    store: Store,
    image: str,
    base: str,
    project: str,
    extra: tuple[str, ...],
    option: str,
    says: str,
) -> None:
    # Given the API
    # When a registration with one bad value is attempted
    result = register(image, base, project=project, extra=extra)
    # Then it is a usage error naming the option and the reason, and nothing is written
    assert result.exit_code == 2, result.output
    assert f"Invalid value for {option}: " in result.output
    assert says in result.output
    assert list(store.list_bases()) == []


def test_a_cycle_is_refused_naming_it(api: ApiServer, store: Store) -> None:
    # Given golden on node:22 and app on golden
    register("acme/golden:1", "node:22")
    register("acme/app:1", "acme/golden:1")
    # When golden is registered on app
    result = register("acme/golden:1", "acme/app:1")
    # Then the cycle is named and golden's registration is unchanged
    assert result.exit_code == 2
    assert f"Invalid value for --base: cycle: {GOLDEN} -> {APP} -> {GOLDEN}" in result.output
    assert store.get_dependent(GOLDEN).bases == [NODE]  # type: ignore[union-attr]


def test_update_changes_only_what_is_given(api: ApiServer, store: Store) -> None:
    # Given a registered image
    register("acme/app:1", "node:22", extra=("--owner", "team-a"))
    # When auto-rebuild is turned off
    result = run("update", "acme/app:1", "--no-auto-rebuild")
    # Then only that changed
    assert result.exit_code == 0, result.output
    assert result.output == f"updated {APP}: auto_rebuild\n"
    stored = store.get_dependent(APP)
    assert stored is not None
    assert (stored.auto_rebuild, stored.owner) == (False, "team-a")


def test_a_policy_is_registered_changed_and_reset(api: ApiServer, store: Store) -> None:
    # Given an image registered with a promotion policy
    assert register("acme/app:1", "node:22", extra=("--policy", "fail_on=critical")).exit_code == 0
    assert store.get_dependent(APP).policy == "fail_on=critical"  # type: ignore[union-attr]
    # When the policy is changed, then reset to the default
    changed = run("update", "acme/app:1", "--policy", "ignore_unfixed=true")
    assert changed.exit_code == 0, changed.output
    assert store.get_dependent(APP).policy == "ignore_unfixed=true"  # type: ignore[union-attr]
    reset = run("update", "acme/app:1", "--policy", "")
    # Then the stored policy follows each time
    assert reset.exit_code == 0, reset.output
    assert store.get_dependent(APP).policy is None  # type: ignore[union-attr]


def test_update_of_an_unknown_image_fails_with_404(api: ApiServer) -> None:
    # Given no registered image
    # When one is updated
    result = run("update", "acme/nobody:1", "--owner", "x")
    # Then the API's 404 is the error
    assert result.exit_code == 1
    assert "Error: no dependent image docker.io/acme/nobody:1 (HTTP 404)" in result.output


# ---------------------------------------------------------------- reading


def test_list_show_and_bases_as_tables_and_json(api: ApiServer, store: Store) -> None:
    # Given golden on node:22 (seen at D1), app on golden, and a failed rebuild of app
    register("acme/golden:1", "node:22", extra=("--owner", "platform"))
    register("acme/app:1", "acme/golden:1", extra=("--owner", "team-a", "--build-arg", "PY=3.13"))
    store.record_digest(NODE, None, D1, at=datetime(2026, 1, 1, tzinfo=UTC))
    record_rebuild(store, APP, GOLDEN, RebuildStatus.FAILED)
    # When they are listed and shown
    listed, listed_json = run("list"), run("list", "--json")
    shown, shown_json = run("show", "acme/app:1"), run("show", "acme/app:1", "--json")
    bases = run("bases")
    # Then the tables read as tables
    assert listed.output.splitlines() == [
        "IMAGE                    PROJECT            OWNER     AUTO  COOLDOWN  BASES",
        f"{APP}     patchprop-rebuild  team-a    yes   0s        {GOLDEN}",
        f"{GOLDEN}  patchprop-rebuild  platform  yes   0s        {NODE}",
    ]
    assert f"image:        {APP}\n" in shown.output
    assert "build args:   PY=3.13\n" in shown.output
    assert f"{GOLDEN}  -" in shown.output  # golden's digest is not known yet
    assert "FAILED !" in shown.output
    assert bases.output.splitlines()[0].split() == ["BASE", "DIGEST", "PREVIOUS", "CHANGED", "IMAGES"]
    assert f"{NODE}  sha256:111111111111  -" in bases.output
    # and --json is the API's answer
    assert [d["image"] for d in json.loads(listed_json.output)["dependents"]] == [APP, GOLDEN]
    assert json.loads(shown_json.output)["rebuilds"][0]["status"] == "FAILED"


def test_show_of_a_malformed_image_names_the_argument(api: ApiServer) -> None:
    # Given the API
    # When a malformed reference is shown
    result = run("show", "Bad:x")
    # Then the argument is named
    assert result.exit_code == 2
    assert "Invalid value for IMAGE: invalid image reference 'Bad:x'" in result.output


def test_rebuilds_are_filtered(api: ApiServer, store: Store) -> None:
    # Given a failed rebuild of golden and a succeeded one of app
    register("acme/golden:1", "node:22")
    register("acme/app:1", "acme/golden:1")
    failed = record_rebuild(store, GOLDEN, NODE, RebuildStatus.FAILED)
    succeeded = record_rebuild(store, APP, GOLDEN, RebuildStatus.SUCCEEDED)

    def ids(*args: str) -> list[str]:
        result = run("rebuilds", "--json", *args)
        assert result.exit_code == 0, result.output
        return sorted(r["rebuild_id"] for r in json.loads(result.output)["rebuilds"])

    # When they are listed with each filter
    # Then each filter keeps only what matches
    assert ids() == sorted([failed, succeeded])
    assert ids("--status", "failed") == [failed]
    assert ids("--image", "acme/app:1") == [succeeded]
    assert ids("--base", "node:22") == [failed]
    assert ids("--limit", "1") in ([failed], [succeeded])
    # and the table marks the failure
    table = run("rebuilds", "--status", "FAILED").output
    assert table.splitlines()[0].split()[:4] == ["DETECTED", "IMAGE", "BASE", "BASE"]
    assert re.search(rf"{re.escape(GOLDEN)}\s+{re.escape(NODE)}\s+sha256:111111111111\s+FAILED !", table)
    # and a bad status is named as the option
    bad = run("rebuilds", "--status", "EXPLODED")
    assert bad.exit_code == 2
    assert "Invalid value for --status" in bad.output


def test_remove_then_show_fails(api: ApiServer, store: Store) -> None:
    # Given two registered images
    register("acme/app:1", "node:22")
    register("acme/other:1", "node:22")
    # When both and an unknown one are removed
    result = run("remove", "acme/app:1", "acme/nobody:1", "acme/other:1")
    # Then the known ones are removed, the unknown one is the error, and showing a removed one fails
    assert result.exit_code == 1
    assert f"removed {APP}\nremoved docker.io/acme/other:1\n" in result.output
    assert "acme/nobody:1: no dependent image docker.io/acme/nobody:1 (HTTP 404)" in result.output
    assert list(store.list_dependents()) == []
    shown = run("show", "acme/app:1")
    assert shown.exit_code == 1
    assert "no dependent image docker.io/acme/app:1 (HTTP 404)" in shown.output


def test_graph_in_each_format(api: ApiServer, store: Store) -> None:
    # Given golden on node:22, app on golden (last rebuild failed), and an unrelated image
    register("acme/golden:1", "node:22")
    register("acme/app:1", "acme/golden:1")
    register("acme/other:1", "alpine:3")
    record_rebuild(store, APP, GOLDEN, RebuildStatus.FAILED)
    # When the graph is printed whole and for node:22, in each format
    whole = run("graph")
    affected = run("graph", "--base", "node:22", "--format", "dot")
    as_json = run("graph", "--base", "node:22", "--json")
    # Then Mermaid has every edge and the failure classed
    assert whole.exit_code == 0, whole.output
    assert whole.output.startswith("graph TD\n")
    assert whole.output.count(" --> ") == 3
    assert re.search(r"class n\d+ failed", whole.output)
    # and the affected set of node:22 leaves the unrelated image out
    assert f'"{NODE}" -> "{GOLDEN}";' in affected.output
    assert f'"{GOLDEN}" -> "{APP}";' in affected.output
    assert "other" not in affected.output
    assert [n["ref"] for n in json.loads(as_json.output)["nodes"]] == [APP, GOLDEN, NODE]


# ---------------------------------------------------------------- finding and signing the API


def test_without_an_api_url_the_error_says_what_to_pass(
    aws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given no --api-url, no PATCHPROP_API_URL, and no local stack in this directory
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PATCHPROP_API_URL", raising=False)
    # When a command needs the API
    result = run("list")
    # Then it says how to name one
    assert result.exit_code == 2
    assert "pass --api-url (the stack's ApiUrl output)" in result.output


def test_the_local_stacks_api_is_found_from_local_json(
    api: ApiServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given `patchprop local`'s state file in the working directory, and no PATCHPROP_API_URL
    monkeypatch.delenv("PATCHPROP_API_URL")
    (tmp_path / ".patchprop").mkdir()
    (tmp_path / ".patchprop" / "local.json").write_text(json.dumps({"api_url": api.url}))
    # When a command runs
    result = run("list", "--json")
    # Then it talks to that API, unsigned
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"dependents": []}
    assert "Authorization" not in api.received[-1]["headers"]


def test_signed_requests_carry_a_valid_sigv4_signature_for_execute_api(api: ApiServer) -> None:
    # Given a client that signs (as it does for any host but 127.0.0.1/localhost)
    client = ApiClient(api.url, sign=True, region="eu-west-1")
    # When it registers an image and asks for one, with '/' and ':' in the query string
    register_dependent("acme/app:1", ["node:22"], PROJECTS[0], None, {}, client=client)
    client.get("/dependents/one", image="acme/app:1")
    # Then each request is signed with the caller's AWS credentials for execute-api in that region,
    # over exactly what was sent
    credentials = boto3.Session().get_credentials().get_frozen_credentials()  # type: ignore[union-attr]
    for sent in api.received:
        headers = sent["headers"]
        authorization = headers["Authorization"]
        assert authorization.startswith(f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/")
        assert headers["X-Amz-Security-Token"] == credentials.token
        assert "/eu-west-1/execute-api/aws4_request" in authorization
        signed = re.search(r"SignedHeaders=([^,]+)", authorization).group(1).split(";")  # type: ignore[union-attr]
        # Canonicalized as AWS does it: the query decoded, then URI-encoded with only A-Z a-z 0-9 -_.~ left.
        path, _, query = sent["path"].partition("?")
        canonical = urlencode(sorted(parse_qsl(query, keep_blank_values=True)), quote_via=quote)
        request = AWSRequest(
            method=sent["method"],
            url=api.url + path + (f"?{canonical}" if canonical else ""),
            data=(sent["body"] or "").encode() or None,
            headers={k: v for k, v in headers.items() if k.lower() in signed},
        )
        request.context["timestamp"] = headers["X-Amz-Date"]
        auth = SigV4Auth(credentials, "execute-api", "eu-west-1")
        expected = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
        assert authorization.endswith(f"Signature={expected}")
    assert api.received[-1]["path"] == "/dependents/one?image=acme%2Fapp%3A1"


def test_which_urls_are_signed_and_for_which_region() -> None:
    # Given the URLs a user may pass
    deployed = "https://abc123defg.execute-api.eu-west-1.amazonaws.com/v1"
    # When the client is chosen for each
    # Then only the local ones go unsigned, and the region comes from the host name
    assert ApiClient.for_url(deployed).sign is True
    assert ApiClient.for_url(deployed).region == "eu-west-1"
    assert region_of("https://api.example.com/v1") is None
    assert is_local("http://127.0.0.1:8780") and is_local("http://localhost:8780")
    assert not is_local(deployed)
    assert resolve_api_url(deployed + "/") == deployed


def test_an_unreachable_api_is_a_clear_error(aws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Given an API URL where nothing listens
    monkeypatch.chdir(tmp_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = server.server_address[1]
    server.server_close()
    # When a command runs against it
    result = run("bases", "--api-url", f"http://127.0.0.1:{port}")
    # Then it says it cannot reach it
    assert result.exit_code == 1
    assert f"cannot reach the API at http://127.0.0.1:{port}" in result.output
