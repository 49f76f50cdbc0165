"""The management API through its real handler on moto: every route, bad input, and its OpenAPI document."""

from __future__ import annotations

import importlib.util
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from support import PROJECTS, handler, sample_event

from patchprop.adapters.dynamodb import Store
from patchprop.domain.models import PatchRequest, RebuildRequest
from patchprop.domain.records import Finish, Rebuild, RebuildStatus
from patchprop_local.lambdas import LocalContext, api_event
from patchprop_local.resources import CHECKOUT as ROOT
from patchprop_local.template import load_template

pytestmark = pytest.mark.integration

NODE = "docker.io/library/node:22"
PYTHON = "dhi.io/python:3.13"
GOLDEN = "docker.io/acme/golden:1"
APP = "docker.io/acme/app:1"
WORKER = "docker.io/acme/worker:1"
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64


def call(method: str, path: str, body: Any = None, **query: Any) -> tuple[int, Any]:
    """One request to the API function as API Gateway would send it; (status, JSON body)."""
    text = body if isinstance(body, str) else (json.dumps(body) if body is not None else None)
    event = api_event(method, path, path, {}, text)
    params = {k: str(v) for k, v in query.items() if v is not None}
    event["queryStringParameters"] = params or None
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in params.items()} or None
    answer = handler("api")(event, LocalContext(function_name="api"))
    return answer["statusCode"], json.loads(answer["body"] or "null")


def registration(image: str, *bases: str, **extra: Any) -> dict[str, Any]:
    return {"image": image, "bases": list(bases), "project": PROJECTS[0], **extra}


def register(image: str, *bases: str, **extra: Any) -> dict[str, Any]:
    status, body = call("POST", "/dependents", registration(image, *bases, **extra))
    assert status in (200, 201), body
    return body


def record_rebuild(
    store: Store, image: str, base: str, digest: str, status: RebuildStatus, minutes: int
) -> str:
    """A rebuild of `image` on `base@digest`, detected `minutes` after a fixed time, ended in `status`."""
    dependent = store.get_dependent(image)
    assert dependent is not None
    patch = PatchRequest(
        base=base,
        digest=digest,
        detected_by="poller",
        detected_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes),
    )
    request = RebuildRequest.for_dependent(dependent, patch)
    if status is RebuildStatus.NOT_STARTED:
        store.record_not_started(Rebuild.not_started(request, "project refused"))
    else:
        store.record_started(Rebuild.started(request, f"{dependent.project}:{request.rebuild_id}"))
        if status.final:
            store.record_finished(
                request.rebuild_id,
                Finish(status=status, build_id=f"{dependent.project}:{request.rebuild_id}"),
            )
    return request.rebuild_id


@pytest.fixture
def store(aws) -> Store:
    return Store(aws.refs["PatchpropTable"])


@pytest.fixture
def chain(store: Store) -> Store:
    """node:22 <- golden <- {app, worker}; dhi python <- worker too."""
    register(GOLDEN, "node:22", owner="platform")
    register(APP, GOLDEN, owner="team-a", build_args={"PY": "3.13"})
    register(WORKER, GOLDEN, PYTHON, owner="team-b")
    return store


# ---------------------------------------------------------------- register, update, show, list


def test_register_answers_201_then_200_and_stores_the_whole_dependent(store: Store) -> None:
    # Given a registration with every field
    body = registration(
        "acme/app:1",
        "node:22",
        PYTHON,
        owner="team-a",
        source_location="https://github.com/acme/app",
        source_version="main",
        build_args={"PY": "3.13"},
        auto_rebuild=False,
        cooldown_seconds=3600,
    )
    # When it is posted twice
    first_status, first = call("POST", "/dependents", body)
    again_status, again = call("POST", "/dependents", body)
    # Then the first creates it (references normalized) and the second replaces it
    assert (first_status, first["created"]) == (201, True)
    assert (again_status, again["created"]) == (200, False)
    assert first["dependent"]["bases"] == [NODE, PYTHON]
    stored = store.get_dependent(APP)
    assert stored is not None
    assert (stored.cooldown_seconds, stored.auto_rebuild, stored.source_version) == (3600, False, "main")
    # and planning finds it through both bases
    assert [d.image for d in store.dependents_of(NODE)] == [APP]
    assert [d.image for d in store.dependents_of(PYTHON)] == [APP]


def test_reregistering_with_fewer_bases_removes_the_old_edge(store: Store) -> None:
    # Given an image registered on two bases
    register(APP, "node:22", "node:24")
    # When it is registered again on one of them
    register(APP, "node:24")
    # Then planning no longer finds it through the other
    assert list(store.dependents_of(NODE)) == []
    assert [d.image for d in store.dependents_of("docker.io/library/node:24")] == [APP]


def test_list_and_show(chain: Store) -> None:
    # Given the chain, node:22 seen at D1 then D2, and two rebuilds of app
    chain.record_digest(NODE, None, D1)
    chain.record_digest(NODE, D1, D2, at=datetime(2026, 1, 2, tzinfo=UTC))
    record_rebuild(chain, APP, GOLDEN, D1, RebuildStatus.SUCCEEDED, minutes=1)
    newest = record_rebuild(chain, APP, GOLDEN, D2, RebuildStatus.FAILED, minutes=2)
    # When the dependents are listed, and golden and app shown
    list_status, listed = call("GET", "/dependents")
    golden_status, golden = call("GET", "/dependents/one", image="acme/golden:1")
    app_status, app = call("GET", "/dependents/one", image=APP)
    # Then the list has all three, golden shows its base's digests and what is built on it,
    assert (list_status, golden_status, app_status) == (200, 200, 200)
    assert [d["image"] for d in listed["dependents"]] == [APP, GOLDEN, WORKER]
    assert golden["dependent"]["owner"] == "platform"
    assert golden["bases"] == [
        {"ref": NODE, "digest": D2, "previous_digest": D1, "changed_at": "2026-01-02T00:00:00Z"}
    ]
    assert golden["built_on_it"] == [APP, WORKER]
    # and app shows its rebuilds newest first
    assert app["rebuilds"][0]["rebuild_id"] == newest
    assert [r["status"] for r in app["rebuilds"]] == ["FAILED", "SUCCEEDED"]


def test_update_changes_only_the_fields_given(chain: Store) -> None:
    # Given a registered image
    # When auto-rebuild is turned off and a cooldown set
    status, body = call("PATCH", "/dependents", {"auto_rebuild": False, "cooldown_seconds": 600}, image=APP)
    # Then those change and the rest stays as registered
    assert status == 200, body
    stored = chain.get_dependent(APP)
    assert stored is not None
    assert (stored.auto_rebuild, stored.cooldown_seconds) == (False, 600)
    assert (stored.owner, stored.bases, stored.build_args) == ("team-a", [GOLDEN], {"PY": "3.13"})


def test_update_of_new_bases_moves_the_edges(chain: Store) -> None:
    # Given app on golden
    # When its bases are changed to node:22
    status, _ = call("PATCH", "/dependents", {"bases": ["node:22"]}, image=APP)
    # Then planning finds it through node:22 and no longer through golden
    assert status == 200
    assert sorted(d.image for d in chain.dependents_of(NODE)) == [APP, GOLDEN]
    assert [d.image for d in chain.dependents_of(GOLDEN)] == [WORKER]


# ---------------------------------------------------------------- remove and unknown images


def test_remove_then_the_image_is_gone(chain: Store) -> None:
    # Given the chain
    # When app is removed
    status, body = call("DELETE", "/dependents", image="acme/app:1")
    # Then it answers with the normalized image, and neither listing nor planning finds it
    assert (status, body) == (200, {"removed": APP})
    assert chain.get_dependent(APP) is None
    assert [d.image for d in chain.dependents_of(GOLDEN)] == [WORKER]
    _, listed = call("GET", "/dependents")
    assert APP not in [d["image"] for d in listed["dependents"]]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("DELETE", "/dependents", None),
        ("PATCH", "/dependents", {"owner": "x"}),
        ("GET", "/dependents/one", None),
    ],
    ids=["remove", "update", "show"],
)
def test_an_unknown_dependent_is_404(store: Store, method: str, path: str, body: Any) -> None:
    # Given no registered image
    # When one is removed, updated or shown
    status, answer = call(method, path, body, image="acme/nobody:1")
    # Then the answer is 404 naming it, and nothing is written
    assert status == 404
    assert answer == {"error": "no dependent image docker.io/acme/nobody:1", "field": "image"}
    assert list(store.list_dependents()) == []


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (registration(APP, "Bad:x"), "bases.0"),
        (registration(APP, "node:22", "node@sha256:" + "a" * 64), "bases.1"),
        (registration("Bad:x", "node:22"), "image"),
        (registration(APP), "bases"),
        (registration(APP, "node:22", project="bad project"), "project"),
        (registration(APP, "node:22", cooldown_seconds=-1), "cooldown_seconds"),
        (registration(APP, "node:22", build_args={"PY": 3}), "build_args.PY"),
        (registration(APP, "node:22", auto_rebuld=False), "auto_rebuld"),
        ({"bases": ["node:22"], "project": PROJECTS[0]}, "image"),
    ],
    ids=[
        "malformed-base",
        "digest-base",
        "malformed-image",
        "no-bases",
        "bad-project",
        "negative-cooldown",
        "non-string-build-arg",
        "unknown-field",
        "missing-image",
    ],
)
def test_bad_registration_is_400_naming_the_field(store: Store, body: dict[str, Any], field: str) -> None:
    # Given a registration with one bad field
    # When it is posted
    status, answer = call("POST", "/dependents", body)
    # Then the answer is 400 naming that field first, and nothing is written
    assert status == 400, answer
    assert answer["field"] == field
    assert answer["error"].startswith(f"{field}: ")
    assert answer["details"][0]["field"] == field
    assert list(store.list_dependents()) == []
    assert list(store.list_bases()) == []


def test_a_body_that_is_not_json_is_400(store: Store) -> None:
    # Given a body that is not JSON
    # When it is posted
    status, answer = call("POST", "/dependents", "{not json")
    # Then the answer is 400 about the body
    assert status == 400
    assert answer["field"] == "body"
    assert answer["error"].startswith("body: not JSON: ")
    assert list(store.list_dependents()) == []


@pytest.mark.parametrize(
    ("method", "path", "query", "field"),
    [
        ("GET", "/dependents/one", {"image": "Bad:x"}, "image"),
        ("GET", "/dependents/one", {}, "image"),
        ("DELETE", "/dependents", {"image": "node@sha256:" + "a" * 64}, "image"),
        ("GET", "/rebuilds", {"status": "EXPLODED"}, "status"),
        ("GET", "/rebuilds", {"limit": "0"}, "limit"),
        ("GET", "/rebuilds", {"base": "Bad:x"}, "base"),
        ("GET", "/graph", {"base": "Bad:x"}, "base"),
    ],
)
def test_bad_query_parameters_are_400_naming_them(
    aws, method: str, path: str, query: dict[str, str], field: str
) -> None:
    # Given a request with a bad or missing query parameter
    # When it is sent
    status, answer = call(method, path, **query)
    # Then the answer is 400 naming the parameter
    assert status == 400, answer
    assert answer["field"] == field


def test_an_update_that_leaves_the_dependent_invalid_is_400_naming_the_field(chain: Store) -> None:
    # Given a registered image
    # When a required field is set to null
    status, answer = call("PATCH", "/dependents", {"auto_rebuild": None}, image=APP)
    # Then the answer is 400 naming it, and the registration is unchanged
    assert (status, answer["field"]) == (400, "auto_rebuild")
    assert chain.get_dependent(APP).auto_rebuild is True  # type: ignore[union-attr]


def test_a_project_the_stack_may_not_start_is_refused_with_403(store: Store) -> None:
    # Given a registration naming a CodeBuild project outside RebuildProjects
    body = registration(APP, "node:22", project="someone-elses-project")
    # When it is posted
    status, answer = call("POST", "/dependents", body)
    # Then it is refused, saying so and naming the projects that are allowed, and nothing is written
    assert status == 403
    assert answer == {
        "error": "CodeBuild project someone-elses-project is not one this stack may start "
        f"(allowed: {', '.join(sorted(PROJECTS))})",
        "field": "project",
    }
    assert store.get_dependent(APP) is None


def test_an_update_to_a_forbidden_project_is_refused_with_403(chain: Store) -> None:
    # Given a registered image
    # When its project is changed to one outside RebuildProjects
    status, answer = call("PATCH", "/dependents", {"project": "someone-elses-project"}, image=APP)
    # Then the change is refused and the registration unchanged
    assert (status, answer["field"]) == (403, "project")
    assert chain.get_dependent(APP).project == PROJECTS[0]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("image", "bases", "cycle"),
    [
        (GOLDEN, [APP], [GOLDEN, APP, GOLDEN]),
        ("acme/base-of-golden:1", ["acme/base-of-golden:1"], ["docker.io/acme/base-of-golden:1"] * 2),
    ],
    ids=["two-images", "itself"],
)
def test_a_cycle_is_refused_with_409_naming_it(
    chain: Store, image: str, bases: list[str], cycle: list[str]
) -> None:
    # Given the chain node:22 <- golden <- app
    before = chain.get_dependent(GOLDEN)
    # When an image is registered on one built on it (or on itself)
    status, answer = call("POST", "/dependents", registration(image, *bases))
    # Then it is refused with the cycle spelled out, and nothing changes
    assert status == 409
    assert answer == {"error": "cycle: " + " -> ".join(cycle), "field": "bases"}
    assert chain.get_dependent(GOLDEN) == before


def test_a_longer_cycle_is_named_link_by_link(store: Store) -> None:
    # Given a <- b <- c (b is built FROM a, c FROM b)
    register("acme/a:1", "node:22")
    register("acme/b:1", "acme/a:1")
    register("acme/c:1", "acme/b:1")
    # When a is registered on c
    status, answer = call("POST", "/dependents", registration("acme/a:1", "acme/c:1"))
    # Then the whole loop is named, each image built FROM the next
    assert status == 409
    assert (
        answer["error"]
        == "cycle: docker.io/acme/a:1 -> docker.io/acme/c:1 -> docker.io/acme/b:1 -> docker.io/acme/a:1"
    )
    assert store.get_dependent("docker.io/acme/a:1").bases == [NODE]  # type: ignore[union-attr]


# ---------------------------------------------------------------- bases, rebuilds, graph


def test_bases_show_digest_when_it_moved_and_how_many_images(chain: Store) -> None:
    # Given the chain and node:22 moved from D1 to D2
    chain.record_digest(NODE, None, D1)
    chain.record_digest(NODE, D1, D2, at=datetime(2026, 1, 2, tzinfo=UTC))
    # When the bases are listed
    status, answer = call("GET", "/bases")
    # Then each has its digests, when it moved, and its number of direct dependents
    assert status == 200
    by_ref = {b["ref"]: b for b in answer["bases"]}
    assert sorted(by_ref) == [PYTHON, GOLDEN, NODE]
    assert by_ref[NODE] == {
        "ref": NODE,
        "digest": D2,
        "previous_digest": D1,
        "changed_at": "2026-01-02T00:00:00Z",
        "dependents": 1,
    }
    assert by_ref[GOLDEN]["dependents"] == 2
    assert by_ref[PYTHON]["digest"] is None


def test_rebuilds_newest_first_filtered_by_image_base_and_status(chain: Store) -> None:
    # Given four rebuilds across two images and two bases
    a1 = record_rebuild(chain, APP, GOLDEN, D1, RebuildStatus.SUCCEEDED, minutes=1)
    w1 = record_rebuild(chain, WORKER, GOLDEN, D1, RebuildStatus.FAILED, minutes=2)
    w2 = record_rebuild(chain, WORKER, PYTHON, D2, RebuildStatus.NOT_STARTED, minutes=3)
    a2 = record_rebuild(chain, APP, GOLDEN, D3, RebuildStatus.IN_PROGRESS, minutes=4)

    def ids(**query: Any) -> list[str]:
        status, answer = call("GET", "/rebuilds", **query)
        assert status == 200, answer
        return [r["rebuild_id"] for r in answer["rebuilds"]]

    # When they are listed with each filter
    # Then each answer holds exactly the matching ones, newest first
    assert ids() == [a2, w2, w1, a1]
    assert ids(image="acme/worker:1") == [w2, w1]
    assert ids(base=GOLDEN) == [a2, w1, a1]
    assert ids(base=PYTHON) == [w2]
    assert ids(status="FAILED") == [w1]
    assert ids(image=WORKER, status="NOT_STARTED") == [w2]
    assert ids(limit=2) == [a2, w2]


def test_the_whole_graph(chain: Store) -> None:
    # Given the chain, app's last rebuild failed, and an unrelated image on another base
    record_rebuild(chain, APP, GOLDEN, D1, RebuildStatus.FAILED, minutes=1)
    register("acme/other:1", "alpine:3")
    # When the whole graph is asked for
    status, answer = call("GET", "/graph")
    # Then every image and base is a node, every registration an edge
    assert status == 200
    nodes = {n["ref"]: n for n in answer["nodes"]}
    assert sorted(nodes) == sorted(
        [NODE, PYTHON, GOLDEN, APP, WORKER, "docker.io/acme/other:1", "docker.io/library/alpine:3"]
    )
    assert [(e["base"], e["image"]) for e in answer["edges"]] == [
        (PYTHON, WORKER),
        (GOLDEN, APP),
        (GOLDEN, WORKER),
        ("docker.io/library/alpine:3", "docker.io/acme/other:1"),
        (NODE, GOLDEN),
    ]
    # and nodes tell what they are and how their last rebuild went
    assert (nodes[GOLDEN]["is_base"], nodes[GOLDEN]["is_dependent"]) == (True, True)
    assert (nodes[NODE]["is_base"], nodes[NODE]["is_dependent"]) == (True, False)
    assert nodes[APP]["last_rebuild"]["status"] == "FAILED"
    assert nodes[WORKER]["last_rebuild"] is None
    assert answer["root"] is None


def test_the_affected_set_of_a_base_is_transitive(chain: Store) -> None:
    # Given the chain and an unrelated image on another base
    register("acme/other:1", "alpine:3")
    # When the graph of node:22 is asked for
    status, answer = call("GET", "/graph", base="node:22")
    # Then it holds node:22, golden, and the images built on golden, and nothing else
    assert status == 200
    assert answer["root"] == NODE
    assert [n["ref"] for n in answer["nodes"]] == [APP, GOLDEN, WORKER, NODE]
    assert [(e["base"], e["image"]) for e in answer["edges"]] == [
        (GOLDEN, APP),
        (GOLDEN, WORKER),
        (NODE, GOLDEN),
    ]


def test_the_affected_set_of_an_intermediate_image(chain: Store) -> None:
    # Given the chain
    # When the graph of python (worker's second base) is asked for
    status, answer = call("GET", "/graph", base=PYTHON)
    # Then only worker is affected
    assert status == 200
    assert [(e["base"], e["image"]) for e in answer["edges"]] == [(PYTHON, WORKER)]


def test_the_affected_set_of_a_golden_image_keeps_what_it_is(chain: Store) -> None:
    # Given the chain (golden is registered on node:22, and app and worker on golden)
    # When the graph of golden is asked for
    status, answer = call("GET", "/graph", base=GOLDEN)
    # Then golden is both a base and an image of the user's, and node:22 is not in it
    assert status == 200
    nodes = {n["ref"]: n for n in answer["nodes"]}
    assert sorted(nodes) == [APP, GOLDEN, WORKER]
    assert (nodes[GOLDEN]["is_base"], nodes[GOLDEN]["is_dependent"], nodes[GOLDEN]["owner"]) == (
        True,
        True,
        "platform",
    )


def test_the_graph_of_an_unknown_base_is_404(chain: Store) -> None:
    # Given the chain
    # When the graph of a base nobody registered is asked for
    status, answer = call("GET", "/graph", base="busybox:1")
    # Then the answer is 404 naming it
    assert status == 404
    assert "docker.io/library/busybox:1" in answer["error"]


def test_sample_events_are_accepted_by_the_handler(aws) -> None:
    # Given the API's files in events/ (what `sam local invoke ApiFunction -e` uses)
    register_event = sample_event("api_register_dependent.json")
    show_event = sample_event("api_show_dependent.json")
    # When the registration and then the show are handled
    registered = handler("api")(register_event, LocalContext(function_name="api"))
    shown = handler("api")(show_event, LocalContext(function_name="api"))
    # Then the first registers the image and the second shows it
    assert registered["statusCode"] == 201, registered["body"]
    assert shown["statusCode"] == 200, shown["body"]
    assert json.loads(shown["body"])["dependent"]["image"] == "docker.io/acme/payments-api:2.4"


# ---------------------------------------------------------------- OpenAPI and template


def _openapi_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("openapi_script", ROOT / "scripts" / "openapi.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_openapi_json_is_in_step_with_the_code() -> None:
    # Given the committed openapi.json
    committed = (ROOT / "openapi.json").read_text(encoding="utf-8")
    # When the document is generated from the handler
    generated = _openapi_script().generate()
    # Then they are the same (else: run `python scripts/openapi.py`)
    assert committed == generated, "openapi.json is stale: run `python scripts/openapi.py`"


def test_openapi_check_fails_on_a_stale_document(tmp_path: Path) -> None:
    # Given a copy of openapi.json with one route's summary changed
    document = json.loads((ROOT / "openapi.json").read_text(encoding="utf-8"))
    document["paths"]["/graph"]["get"]["summary"] = "something else"
    stale = tmp_path / "openapi.json"
    stale.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    script = _openapi_script()
    # When the script checks it, then rewrites it and checks again
    first = script.main(["--check", "--output", str(stale)])
    script.main(["--output", str(stale)])
    second = script.main(["--check", "--output", str(stale)])
    # Then the first check fails and the second passes
    assert (first, second) == (1, 0)


def test_every_route_is_in_the_template_under_aws_iam_and_in_the_document() -> None:
    # Given the template's API events and the OpenAPI document
    resources = load_template()["Resources"]
    events = resources["ApiFunction"]["Properties"]["Events"].values()
    routes = {(e["Properties"]["Method"].upper(), e["Properties"]["Path"]) for e in events}
    documented = {
        (method.upper(), path)
        for path, item in json.loads((ROOT / "openapi.json").read_text(encoding="utf-8"))["paths"].items()
        for method in item
    }
    default = resources["PatchpropApi"]["Properties"].get("Auth", {}).get("DefaultAuthorizer", "NONE")

    def effective(event: dict) -> str:
        """The authorizer a route ends up with: its own, else the API's default."""
        return event["Properties"].get("Auth", {}).get("Authorizer", default)

    # When they are compared
    # Then the same routes are served and documented, every one needs a SigV4 signature,
    assert routes == documented
    assert {effective(e) for e in events} == {"AWS_IAM"}
    # and the webhook routes stay open (Docker Hub cannot sign)
    webhook = resources["WebhookFunction"]["Properties"]["Events"].values()
    assert {effective(e) for e in webhook} == {"NONE"}


def test_api_url_output_is_the_stage_url() -> None:
    # Given the template
    template = load_template()
    stage = template["Resources"]["PatchpropApi"]["Properties"]["StageName"]
    # When the ApiUrl output is read
    url = template["Outputs"]["ApiUrl"]["Value"]["Fn::Sub"]
    # Then it is the stage's base URL, to which the routes' paths are appended
    assert url == f"https://${{PatchpropApi}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}/{stage}"
