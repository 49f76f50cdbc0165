"""template.yaml: lint-clean, least-privilege IAM, and the house rules for queues, logs and tracing.

Most checks run on the CloudFormation that the template becomes on deploy
(scripts/sam_to_cfn.translate), so SAM-generated roles, event source mappings and Globals
are covered too. Every checker is a function over a template dict returning findings, and
each is also fed a broken template to show that it can fail.
"""

from __future__ import annotations

import ast
import copy
import importlib.util
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint_file

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"

Template = dict[str, Any]
Finding = str


def _import_sam_to_cfn() -> ModuleType:
    # scripts/ is not a package: load the script by path, as `python scripts/sam_to_cfn.py` would.
    spec = importlib.util.spec_from_file_location("sam_to_cfn", REPO / "scripts" / "sam_to_cfn.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sam_to_cfn = _import_sam_to_cfn()


@pytest.fixture(scope="module")
def sam() -> Template:
    return sam_to_cfn.load_template(TEMPLATE)


@pytest.fixture(scope="module")
def cfn() -> Template:
    return sam_to_cfn.translate(TEMPLATE)


# ---------------------------------------------------------------- template helpers


def resources_of(template: Template, resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in template.get("Resources", {}).items()
        if isinstance(resource, dict) and resource.get("Type") == resource_type
    }


def referenced_id(value: Any) -> str | None:
    """The logical ID behind a Ref or Fn::GetAtt (either spelling), else None."""
    if isinstance(value, dict) and len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref" and isinstance(arg, str):
            return arg
        if key == "Fn::GetAtt":
            target = arg[0] if isinstance(arg, list) else str(arg).split(".", 1)[0]
            return str(target)
    return None


def literal_strings(value: Any) -> Iterator[str]:
    """The literal text inside a value, looking through intrinsics (Fn::Sub templates, Join parts)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from literal_strings(item)
    elif isinstance(value, dict):
        if "Ref" in value or "Fn::GetAtt" in value:
            return
        for key, item in value.items():
            if key == "Fn::Sub" and isinstance(item, list):
                # [template, {Var: value}]: the variable values are looked through as well
                yield from literal_strings(item)
            elif key == "Fn::If" and isinstance(item, list):
                yield from literal_strings(item[1:])
            else:
                yield from literal_strings(item)


# ---------------------------------------------------------------- IAM checker

# An action whose name starts with one of these only reads.
READ_ONLY_PREFIXES = ("Get", "List", "Describe", "BatchGet", "Query", "Scan", "Receive")
# Writes that may be granted on "*":
# - X-Ray trace and telemetry uploads support no resource-level permissions at all;
# - CloudWatch Logs writes, as AWSLambdaBasicExecutionRole grants them (our own roles scope
#   them to the function's log group; the exception is for SAM-generated roles).
WILDCARD_WRITE_EXCEPTIONS = frozenset(
    {
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }
)
# AWS managed policies whose content is known (SAM attaches these to roles it generates for
# plain or traced functions). Any other managed policy cannot be checked, so it is a finding:
# AWSLambdaSQSQueueExecutionRole, for one, grants sqs:DeleteMessage on every queue.
KNOWN_MANAGED_POLICIES: dict[str, list[dict[str, Any]]] = {
    "AWSLambdaBasicExecutionRole": [
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": "*",
        }
    ],
    "AWSXrayWriteOnlyAccess": [
        {
            "Effect": "Allow",
            "Action": [
                "xray:PutTraceSegments",
                "xray:PutTelemetryRecords",
                "xray:GetSamplingRules",
                "xray:GetSamplingTargets",
                "xray:GetSamplingStatisticSummaries",
            ],
            "Resource": "*",
        }
    ],
}


# New objects under one key prefix of one bucket of this stack, "${Bucket.Arn}/reports/*": an S3
# object ARN has no other way to name objects that do not exist yet, so the "*" is no wildcard.
SCOPED_OBJECT_PREFIX = re.compile(r"^\$\{[A-Za-z0-9]+\.Arn\}(/[A-Za-z0-9._-]+)+/\*$")


def is_wildcard(resource: Any) -> bool:
    sub = resource.get("Fn::Sub") if isinstance(resource, dict) and len(resource) == 1 else None
    if isinstance(sub, str) and SCOPED_OBJECT_PREFIX.fullmatch(sub):
        return False
    return any("*" in text for text in literal_strings(resource))


def is_read_only(action: str) -> bool:
    _, _, name = action.partition(":")
    return name.startswith(READ_ONLY_PREFIXES)


def _branches(value: Any) -> Iterator[Any]:
    """Every value a Fn::If may take (both branches, recursively); AWS::NoValue drops out."""
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        _, when_true, when_false = value["Fn::If"]
        yield from _branches(when_true)
        yield from _branches(when_false)
    elif value != {"Ref": "AWS::NoValue"}:
        yield value


def _as_list(value: Any) -> list[Any]:
    items: list[Any] = []
    for branch in _branches(value):
        items.extend(branch if isinstance(branch, list) else [branch])
    return items


def _policy_documents(node: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every policy document (a dict with Statement) under node, except trust policies."""
    if isinstance(node, dict):
        if "Statement" in node:
            yield where, node
            return
        for key, value in node.items():
            if key != "AssumeRolePolicyDocument":
                yield from _policy_documents(value, f"{where}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _policy_documents(value, f"{where}[{index}]")


def _managed_policy_name(arn: Any) -> str:
    text = "".join(literal_strings(arn)) or json.dumps(arn)
    return text.rsplit("/", 1)[-1]


def statement_findings(statement: Any, where: str) -> list[Finding]:
    if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
        return []
    if "NotAction" in statement or "NotResource" in statement:
        return [f"{where}: Allow with NotAction/NotResource"]
    actions = [a for a in _as_list(statement.get("Action", [])) if isinstance(a, str)]
    findings = [f"{where}: wildcard action {a!r}" for a in actions if "*" in a]
    if "Resource" not in statement:
        # A resource policy (queue, topic) applies to the resource it is attached to.
        return findings if "Principal" in statement else [*findings, f"{where}: no Resource"]
    resources = _as_list(statement["Resource"])
    wildcards = [r for r in resources if is_wildcard(r)]
    writes = [a for a in actions if not is_read_only(a) and a not in WILDCARD_WRITE_EXCEPTIONS]
    if wildcards and writes:
        findings.append(f"{where}: {writes} on wildcard resource {wildcards}")
    return findings


def iam_findings(template: Template) -> list[Finding]:
    """Wildcard actions, and writes on wildcard resources, in every policy of the template."""
    findings: list[Finding] = []
    for name, resource in template.get("Resources", {}).items():
        properties = resource.get("Properties", {}) if isinstance(resource, dict) else {}
        for where, document in _policy_documents(properties, name):
            for index, statement in enumerate(_as_list(document["Statement"])):
                for branch in _branches(statement):
                    findings += statement_findings(branch, f"{where}.Statement[{index}]")
        for arn in _as_list(properties.get("ManagedPolicyArns", [])):
            policy = _managed_policy_name(arn)
            if policy not in KNOWN_MANAGED_POLICIES:
                findings.append(f"{name}: managed policy {policy} cannot be checked")
                continue
            for statement in KNOWN_MANAGED_POLICIES[policy]:
                findings += statement_findings(statement, f"{name}.ManagedPolicyArns:{policy}")
    return findings


# ---------------------------------------------------------------- structural checkers


# (parent property, property) pairs that name a queue taking failed messages or events.
DEAD_LETTER_TARGETS = {
    ("RedrivePolicy", "deadLetterTargetArn"),  # SQS
    ("DeadLetterConfig", "Arn"),  # EventBridge rule targets, Scheduler targets
    ("DeadLetterConfig", "TargetArn"),  # Lambda async invocations
    ("OnFailure", "Destination"),  # Lambda EventInvokeConfig
}


def dead_letter_queues(template: Template) -> set[str]:
    """Queues that receive what failed elsewhere (redrive, rule/schedule DLQs, OnFailure)."""
    found: set[str] = set()

    def walk(node: Any, parent_key: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if (parent_key, key) in DEAD_LETTER_TARGETS:
                    found.add(referenced_id(value) or "")
                else:
                    walk(value, key)
        elif isinstance(node, list):
            for item in node:
                walk(item, parent_key)

    walk(template.get("Resources", {}), "")
    return found & set(resources_of(template, "AWS::SQS::Queue"))


def queues_without_redrive(template: Template) -> list[Finding]:
    dlqs = dead_letter_queues(template)
    return [
        f"{name}: work queue without RedrivePolicy"
        for name, queue in resources_of(template, "AWS::SQS::Queue").items()
        if name not in dlqs and "RedrivePolicy" not in queue.get("Properties", {})
    ]


def _alarms_on_visible_messages(template: Template) -> set[str]:
    watched: set[str] = set()
    for alarm in resources_of(template, "AWS::CloudWatch::Alarm").values():
        p = alarm.get("Properties", {})
        fires_on_one = (p.get("ComparisonOperator"), p.get("Threshold")) in (
            ("GreaterThanThreshold", 0),
            ("GreaterThanOrEqualToThreshold", 1),
        )
        if (
            p.get("Namespace") == "AWS/SQS"
            and p.get("MetricName") == "ApproximateNumberOfMessagesVisible"
            and fires_on_one
            and p.get("AlarmActions")
        ):
            for dimension in p.get("Dimensions", []):
                if dimension.get("Name") == "QueueName":
                    watched.add(referenced_id(dimension.get("Value")) or "")
    return watched


def dlqs_without_alarm(template: Template) -> list[Finding]:
    watched = _alarms_on_visible_messages(template)
    return [f"{name}: DLQ without an alarm" for name in sorted(dead_letter_queues(template) - watched)]


def functions_without_log_group(template: Template) -> list[Finding]:
    groups = resources_of(template, "AWS::Logs::LogGroup")
    retained = {name for name, group in groups.items() if group.get("Properties", {}).get("RetentionInDays")}
    findings = []
    for name, function in resources_of(template, "AWS::Lambda::Function").items():
        configured = referenced_id(function.get("Properties", {}).get("LoggingConfig", {}).get("LogGroup"))
        by_name = {
            group_id
            for group_id, group in groups.items()
            if "".join(literal_strings(group.get("Properties", {}).get("LogGroupName")))
            == "/aws/lambda/${" + name + "}"
        }
        if not ({configured} | by_name) & retained:
            findings.append(f"{name}: no explicit log group with retention")
    return findings


def sqs_sources_without_partial_failures(template: Template) -> list[Finding]:
    queues = set(resources_of(template, "AWS::SQS::Queue"))
    return [
        f"{name}: SQS event source without ReportBatchItemFailures"
        for name, mapping in resources_of(template, "AWS::Lambda::EventSourceMapping").items()
        if referenced_id(mapping["Properties"].get("EventSourceArn")) in queues
        and "ReportBatchItemFailures" not in mapping["Properties"].get("FunctionResponseTypes", [])
    ]


def functions_without_active_tracing(template: Template) -> list[Finding]:
    return [
        f"{name}: tracing not Active"
        for name, function in resources_of(template, "AWS::Lambda::Function").items()
        if function.get("Properties", {}).get("TracingConfig", {}).get("Mode") != "Active"
    ]


def short_visibility_timeouts(template: Template) -> list[Finding]:
    """A queue's visibility timeout must be at least 6x its consumer's timeout (AWS guidance)."""
    queues = resources_of(template, "AWS::SQS::Queue")
    functions = resources_of(template, "AWS::Lambda::Function")
    findings = []
    for mapping in resources_of(template, "AWS::Lambda::EventSourceMapping").values():
        queue_id = referenced_id(mapping["Properties"].get("EventSourceArn"))
        function_id = referenced_id(mapping["Properties"].get("FunctionName"))
        if queue_id not in queues or function_id not in functions:
            continue
        visibility = queues[queue_id].get("Properties", {}).get("VisibilityTimeout", 30)
        timeout = functions[function_id].get("Properties", {}).get("Timeout", 3)
        if visibility < 6 * timeout:
            findings.append(f"{queue_id}: visibility {visibility}s < 6 x {function_id} timeout {timeout}s")
    return findings


# ---------------------------------------------------------------- cfn-lint


def lint(path: Path) -> list[str]:
    """Every cfn-lint error and warning (nothing is ignored)."""
    return [str(match) for match in lint_file(path, config=ManualArgs(regions=["us-east-1"]))]


def test_sam_template_passes_cfn_lint() -> None:
    # Given template.yaml as written (SAM, LanguageExtensions)
    # When cfn-lint checks it
    problems = lint(TEMPLATE)
    # Then it reports nothing, not even a warning
    assert problems == []


def test_translated_template_passes_cfn_lint(cfn: Template, tmp_path: Path) -> None:
    # Given the plain CloudFormation the template becomes on deploy
    path = tmp_path / "cfn.json"
    path.write_text(json.dumps(cfn), encoding="utf-8")
    # When cfn-lint checks it (this also resolves every Ref/GetAtt to a generated resource)
    problems = lint(path)
    # Then it reports nothing
    assert problems == []


def test_cfn_lint_reports_a_broken_template(sam: Template, tmp_path: Path) -> None:
    # Given the template with a queue whose visibility timeout is not a number
    broken = copy.deepcopy(sam)
    broken["Resources"]["PatchQueue"]["Properties"]["VisibilityTimeout"] = "soon"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken), encoding="utf-8")
    # When cfn-lint checks it
    problems = lint(path)
    # Then the property is reported
    assert any("soon" in problem for problem in problems), problems


# ---------------------------------------------------------------- IAM


def test_no_policy_grants_wildcards_for_writes(cfn: Template) -> None:
    # Given every policy of the deployed template (function roles, the scheduler role,
    # per-project policies, queue policies)
    documents = [doc for name, r in cfn["Resources"].items() for doc in _policy_documents(r, name)]
    assert len(documents) >= 8
    # When they are checked
    findings = iam_findings(cfn)
    # Then none grants a wildcard action or writes on a wildcard resource
    assert findings == []


@pytest.fixture(scope="module")
def cfn_with_ecr() -> Template:
    """The deployed template with ECR repositories to read and promote, and a named event bus."""
    return sam_to_cfn.translate(
        TEMPLATE,
        {
            "ReadableRepositories": "team/golden,team/app",
            "PromotableRepositories": "team/app",
            "OutcomeEventBusName": "deploys",
        },
    )


def _ecr_policy_grants(cfn: Template) -> list[tuple[str, str, list[str]]]:
    """(policy, action, resource texts) of every ecr/ecr-public/events action granted."""
    found = []
    for name, resource in cfn["Resources"].items():
        for _, document in _policy_documents(resource.get("Properties", {}), name):
            for statement in _as_list(document["Statement"]):
                for branch in _branches(statement):
                    for action in _as_list(branch.get("Action", [])):
                        if str(action).split(":")[0] in ("ecr", "ecr-public", "events"):
                            texts = ["".join(literal_strings(r)) for r in _as_list(branch["Resource"])]
                            found.append((name, str(action), texts))
    return found


def test_ecr_and_event_grants_write_only_to_named_repositories_and_the_named_bus(
    cfn_with_ecr: Template,
) -> None:
    # Given the deployed template with ReadableRepositories, PromotableRepositories, a bus name
    grants = _ecr_policy_grants(cfn_with_ecr)
    # Then nothing grants a write on a wildcard
    assert iam_findings(cfn_with_ecr) == []
    # And ECR writes go to the promotable repository only, PutEvents to the named bus only
    writes = {
        (a, r)
        for _, a, rs in grants
        for r in rs
        if a.split(":")[1].startswith(("Put", "Upload", "Initiate", "Complete"))
    }
    repo = "arn:${AWS::Partition}:ecr:${AWS::Region}:${AWS::AccountId}:repository/team/app"
    bus = "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${OutcomeEventBusName}"
    assert {r for a, r in writes if a.startswith("ecr:")} == {repo}
    assert {r for a, r in writes if a.startswith("events:")} == {bus}
    # And reads are per named repository (any account: cross-account repositories), with the
    # account-wide authorization token (AWS has no resource-level permission for it)
    reads = {r for _, a, rs in grants if a == "ecr:BatchGetImage" for r in rs}
    assert "arn:${AWS::Partition}:ecr:*:*:repository/team/golden" in reads
    tokens = {r for _, a, rs in grants if a == "ecr:GetAuthorizationToken" for r in rs}
    assert tokens == {"*"}
    roles = cfn_with_ecr["Resources"]["EcrAuthorizationPolicy"]["Properties"]["Roles"]
    assert {referenced_id(r) for r in roles} >= {"WebhookFunctionRole", "PollerFunctionRole"}


def test_ecr_reads_and_their_token_exist_only_with_readable_repositories(cfn_with_ecr: Template) -> None:
    readers = {name for name, _, _ in _ecr_policy_grants(cfn_with_ecr)} - {"OutcomeEventsPolicy"}
    readers -= {n for n in readers if n.startswith(("PromoteIn", "RebaseIn")) or n.endswith("FunctionPolicy")}
    assert readers == {"EcrAuthorizationPolicy", "ReadFromteamgolden", "ReadFromteamapp"}
    resources = cfn_with_ecr["Resources"]
    assert {resources[n]["Condition"] for n in readers} == {"HasReadableRepositories"}


def _ecr_grants_to_role(cfn: Template, role: str) -> list[tuple[str, str, set[str]]]:
    """(policy, ECR action, resource texts) of every policy attached to `role` (RolePolicy or Policy)."""
    found = []
    for name, resource in cfn["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::IAM::RolePolicy":
            attached = [props["RoleName"]]
        elif resource["Type"] == "AWS::IAM::Policy":
            attached = _as_list(props.get("Roles", []))
        else:
            continue
        if role not in {referenced_id(r) for r in attached}:
            continue
        for statement in _as_list(props["PolicyDocument"]["Statement"]):
            for branch in _branches(statement):
                for action in _as_list(branch.get("Action", [])):
                    if str(action).startswith("ecr:"):
                        texts = {"".join(literal_strings(r)) for r in _as_list(branch["Resource"])}
                        found.append((name, str(action), texts))
    return found


REBASE_WRITES = {
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:BatchCheckLayerAvailability",
    "ecr:PutImage",
}


def test_the_rebuilder_pushes_rebased_candidates_only_into_the_promotable_repositories() -> None:
    # Given the deployed template with two promotable repositories (one read elsewhere too)
    cfn = sam_to_cfn.translate(
        TEMPLATE, {"ReadableRepositories": "team/golden", "PromotableRepositories": "team/app,api"}
    )
    grants: dict[str, set[str]] = {}
    for _, action, texts in _ecr_grants_to_role(cfn, _role_of(cfn, "RebuilderFunction")):
        grants.setdefault(action, set()).update(texts)
    arn = "arn:${AWS::Partition}:ecr:${AWS::Region}:${AWS::AccountId}:repository/"
    mine = {arn + "team/app", arn + "api"}
    # Then it may upload layers and put the image, and read what it rebases, on exactly those
    for action in [*REBASE_WRITES, "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]:
        assert mine <= grants[action], action
    for action in REBASE_WRITES:
        assert grants[action] == mine, action  # never "*", never another repository
    # And its token is the only account-wide ECR action (AWS has no resource-level permission)
    assert {a for a, rs in grants.items() if "*" in rs} == {"ecr:GetAuthorizationToken"}
    assert iam_findings(cfn) == []


def _evaluate(value: Any) -> Any:
    """Fn::Join and Fn::Split over literals, as CloudFormation resolves them."""
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(_evaluate(p) for p in _evaluate(parts))
    if isinstance(value, dict) and "Fn::Split" in value:
        separator, text = value["Fn::Split"]
        return _evaluate(text).split(separator)
    if isinstance(value, list):
        return [_evaluate(v) for v in value]
    return value


IAM_POLICY_NAME = re.compile(r"[\w+=,.@-]{1,128}")  # IAM's pattern for a policy name


def test_per_repository_policy_names_are_valid_iam_names_for_namespaced_repositories() -> None:
    # Given namespaced repositories in every per-repository list
    cfn = sam_to_cfn.translate(
        TEMPLATE, {"ReadableRepositories": "team/golden", "PromotableRepositories": "team/app,api"}
    )
    names = {
        logical: _evaluate(resource["Properties"]["PolicyName"])
        for logical, resource in resources_of(cfn, "AWS::IAM::Policy").items()
        if logical.startswith(("PromoteIn", "RebaseIn", "ReadFrom"))
    }
    # Then each policy's name resolves to one IAM accepts ("/" is not allowed), one per repository
    assert names["PromoteInteamapp"] == "promote-team-app"
    assert names["RebaseInteamapp"] == "rebase-team-app"
    assert names["ReadFromteamgolden"] == "read-team-golden"
    assert names["PromoteInapi"] == "promote-api"
    assert all(IAM_POLICY_NAME.fullmatch(n) for n in names.values()), names


def test_without_promotable_repositories_the_rebuilder_writes_no_ecr_repository(cfn: Template) -> None:
    # Given the default (no repository named): every ECR write the rebuilder's policies hold
    writers = {
        policy
        for policy, action, _ in _ecr_grants_to_role(cfn, _role_of(cfn, "RebuilderFunction"))
        if action in REBASE_WRITES
    }
    # Then is in a RebaseIn policy that exists only with promotable repositories
    assert writers and all(n.startswith("RebaseIn") for n in writers)
    assert {cfn["Resources"][n]["Condition"] for n in writers} == {"HasPromotableRepositories"}
    assert cfn["Conditions"]["HasPromotableRepositories"] == {
        "Fn::Not": [{"Fn::Equals": [{"Fn::Join": [",", {"Ref": "PromotableRepositories"}]}, ""]}]
    }


def _role_with(*statements: Any, managed: list[Any] | None = None) -> Template:
    properties: dict[str, Any] = {
        "AssumeRolePolicyDocument": {
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "*"}
            ]
        },
        "Policies": [{"PolicyName": "p", "PolicyDocument": {"Statement": list(statements)}}],
    }
    if managed:
        properties["ManagedPolicyArns"] = managed
    return {"Resources": {"Role": {"Type": "AWS::IAM::Role", "Properties": properties}}}


TABLE_ARN = {"Fn::GetAtt": ["Table", "Arn"]}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        pytest.param(
            _role_with({"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": "*"}),
            "on wildcard resource",
            id="write-on-star",
        ),
        pytest.param(
            _role_with({"Effect": "Allow", "Action": ["dynamodb:*"], "Resource": TABLE_ARN}),
            "wildcard action 'dynamodb:*'",
            id="service-star",
        ),
        pytest.param(
            _role_with({"Effect": "Allow", "Action": "s3:Put*", "Resource": "arn:aws:s3:::b/k"}),
            "wildcard action 's3:Put*'",
            id="prefix-star",
        ),
        pytest.param(
            _role_with({"Effect": "Allow", "Action": "*", "Resource": TABLE_ARN}),
            "wildcard action '*'",
            id="star",
        ),
        pytest.param(
            _role_with(
                {
                    "Effect": "Allow",
                    "Action": "sqs:SendMessage",
                    "Resource": {"Fn::Sub": "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:*"},
                }
            ),
            "on wildcard resource",
            id="arn-with-star",
        ),
        pytest.param(
            _role_with(
                {
                    "Fn::If": [
                        "Cond",
                        {"Effect": "Allow", "Action": "sns:Publish", "Resource": "*"},
                        {"Ref": "AWS::NoValue"},
                    ]
                }
            ),
            "on wildcard resource",
            id="inside-fn-if",
        ),
        pytest.param(
            _role_with(
                {"Effect": "Allow", "Action": "s3:PutObject", "Resource": {"Fn::Sub": "${Bucket.Arn}/*"}}
            ),
            "on wildcard resource",
            id="whole-bucket",
        ),
        pytest.param(
            _role_with({"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::*/reports/*"}),
            "on wildcard resource",
            id="any-bucket",
        ),
        pytest.param(
            _role_with({"Effect": "Allow", "NotAction": "iam:*", "Resource": TABLE_ARN}),
            "NotAction",
            id="not-action",
        ),
        pytest.param(
            _role_with(managed=["arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole"]),
            "AWSLambdaSQSQueueExecutionRole cannot be checked",
            id="unknown-managed-policy",
        ),
    ],
)
def test_iam_checker_reports_wildcards(template: Template, expected: str) -> None:
    # Given a hand-written policy that is too broad
    # When it is checked
    findings = iam_findings(template)
    # Then the checker reports it
    assert any(expected in finding for finding in findings), findings


def test_iam_checker_allows_reads_and_documented_exceptions_on_wildcards() -> None:
    # Given reads and X-Ray uploads on "*", writes under one key prefix of a bucket of the stack,
    # and SAM's default managed policies
    template = _role_with(
        {"Effect": "Allow", "Action": ["dynamodb:Query", "sqs:ReceiveMessage"], "Resource": "*"},
        {"Effect": "Allow", "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"], "Resource": "*"},
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": {"Fn::Sub": "${Bucket.Arn}/reports/*"}},
        managed=[
            {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"},
            "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
        ],
    )
    # When they are checked
    findings = iam_findings(template)
    # Then nothing is reported
    assert findings == []


def test_rebuilder_may_start_exactly_the_named_projects(cfn: Template) -> None:
    # Given the deployed template for RebuildProjects = two fake project names
    projects = sam_to_cfn.FAKE_PARAMETERS["RebuildProjects"].split(",")
    # When every grant of codebuild:StartBuild is collected, with the role it is attached to
    grants = []
    for name, resource in cfn["Resources"].items():
        for _, document in _policy_documents(resource.get("Properties", {}), name):
            for statement in _as_list(document["Statement"]):
                if "codebuild:StartBuild" in _as_list(statement.get("Action", [])):
                    properties = resource["Properties"]
                    roles = [referenced_id(r) for r in properties.get("Roles", [properties.get("RoleName")])]
                    for role in roles:
                        grants.append((role, "".join(literal_strings(statement["Resource"]))))
    # Then only the rebuilder's role has it, the planner's (a base's one check-only scan), and
    # with ScanSource=trivy the poller's and the API's (a rescan's scan-only build), once per
    # project, on that project's ARN alone
    arn = "arn:${AWS::Partition}:codebuild:${AWS::Region}:${AWS::AccountId}:project/"
    starters = ("RebuilderFunctionRole", "PlannerFunctionRole", "PollerFunctionRole", "ApiFunctionRole")
    assert sorted(grants) == sorted((role, arn + project) for project in projects for role in starters)
    rescans = [r for n, r in cfn["Resources"].items() if n.startswith("RescanStartBuild")]
    assert len(rescans) == len(projects) and all(r["Condition"] == "RescansByBuild" for r in rescans)


# ---------------------------------------------------------------- queues, logs, tracing


def test_every_work_queue_has_a_redrive_policy(cfn: Template) -> None:
    # Given the queues of the deployed template, split into DLQs and work queues
    queues = set(resources_of(cfn, "AWS::SQS::Queue"))
    dlqs = dead_letter_queues(cfn)
    assert dlqs == {name for name in queues if name.endswith("DLQ")}  # every *DLQ is wired as one
    assert queues - dlqs == {"PatchQueue", "RebuildQueue", "SlackQueue"}
    # When they are checked
    findings = queues_without_redrive(cfn)
    # Then every work queue hands poison messages to a DLQ
    assert findings == []


def test_every_dlq_has_an_alarm(cfn: Template) -> None:
    # Given the five DLQs (the Slack one only with a webhook)
    assert len(dead_letter_queues(cfn)) == 6
    # When their alarms are looked up
    findings = dlqs_without_alarm(cfn)
    # Then each has one that fires on the first visible message
    assert findings == []


def test_every_function_has_an_explicit_log_group_with_retention(cfn: Template) -> None:
    # Given the seven functions (the Slack one only with a webhook)
    assert len(resources_of(cfn, "AWS::Lambda::Function")) == 8
    # When their log groups are looked up
    findings = functions_without_log_group(cfn)
    # Then each logs to a group of this stack that has a retention
    assert findings == []


def test_every_sqs_event_source_reports_batch_item_failures(cfn: Template) -> None:
    # Given the SQS event source mappings (planner, rebuilder, Slack)
    assert len(resources_of(cfn, "AWS::Lambda::EventSourceMapping")) == 3
    # When they are checked
    findings = sqs_sources_without_partial_failures(cfn)
    # Then a failed record is retried alone, not with its whole batch
    assert findings == []


def test_every_function_has_active_tracing(cfn: Template) -> None:
    # Given the functions (Tracing comes from Globals)
    # When they are checked
    findings = functions_without_active_tracing(cfn)
    # Then every one traces
    assert findings == []


def test_queue_visibility_is_six_times_the_consumer_timeout(cfn: Template) -> None:
    # Given each SQS event source and its function
    # When the queue's visibility timeout is compared with the function's timeout
    findings = short_visibility_timeouts(cfn)
    # Then a message is not redelivered while a slow invocation still works on it
    assert findings == []


def _without(path: str) -> Callable[[Template], None]:
    *parents, leaf = path.split(".")

    def mutate(template: Template) -> None:
        node = template["Resources"]
        for key in parents:
            node = node[key]
        del node[leaf]

    return mutate


def _set(path: str, value: Any) -> Callable[[Template], None]:
    *parents, leaf = path.split(".")

    def mutate(template: Template) -> None:
        node = template["Resources"]
        for key in parents:
            node = node[key]
        node[leaf] = value

    return mutate


@pytest.mark.parametrize(
    ("mutate", "check", "expected"),
    [
        pytest.param(
            _without("PatchQueue.Properties.RedrivePolicy"),
            queues_without_redrive,
            "PatchQueue",
            id="redrive",
        ),
        pytest.param(_without("RebuildDLQAlarm"), dlqs_without_alarm, "RebuildDLQ", id="dlq-alarm"),
        pytest.param(
            _set("PollerDLQAlarm.Properties.Threshold", 10),
            dlqs_without_alarm,
            "PollerDLQ",
            id="alarm-threshold",
        ),
        pytest.param(
            _without("PlannerFunction.Properties.LoggingConfig"),
            functions_without_log_group,
            "PlannerFunction",
            id="log-group",
        ),
        pytest.param(
            _without("WebhookFunctionLogGroup.Properties.RetentionInDays"),
            functions_without_log_group,
            "WebhookFunction",
            id="retention",
        ),
        pytest.param(
            _without("RebuilderFunctionRebuilds.Properties.FunctionResponseTypes"),
            sqs_sources_without_partial_failures,
            "RebuilderFunctionRebuilds",
            id="partial-failures",
        ),
        pytest.param(
            _without("PollerFunction.Properties.TracingConfig"),
            functions_without_active_tracing,
            "PollerFunction",
            id="tracing",
        ),
        pytest.param(
            _set("RebuildQueue.Properties.VisibilityTimeout", 60),
            short_visibility_timeouts,
            "RebuildQueue",
            id="visibility",
        ),
    ],
)
def test_structural_checkers_report_a_broken_template(
    cfn: Template,
    mutate: Callable[[Template], None],
    check: Callable[[Template], list[Finding]],
    expected: str,
) -> None:
    # Given the deployed template with one house rule broken
    broken = copy.deepcopy(cfn)
    mutate(broken)
    # When the rule's checker runs
    findings = check(broken)
    # Then it names the offending resource
    assert any(finding.startswith(expected) for finding in findings), findings


# ---------------------------------------------------------------- API and wiring


def test_api_never_logs_or_traces_the_webhook_token(cfn: Template) -> None:
    # Given the API stage (the webhook token is a path segment)
    (stage,) = resources_of(cfn, "AWS::ApiGateway::Stage").values()
    properties = stage["Properties"]
    # When its logging and tracing settings are read
    access_format = properties.get("AccessLogSetting", {}).get("Format", "")
    method_settings = properties.get("MethodSettings", [])
    # Then the path reaches no access log, execution log, data trace or X-Ray trace
    assert "$context.path" not in access_format
    assert properties.get("TracingEnabled") is not True
    assert all(s.get("LoggingLevel", "OFF") == "OFF" for s in method_settings)
    assert not any(s.get("DataTraceEnabled") for s in method_settings)


def test_deployed_api_signs_every_route_but_the_webhook(cfn: Template) -> None:
    # Given the REST API the template becomes (SAM writes each route into its OpenAPI body)
    (api,) = resources_of(cfn, "AWS::ApiGateway::RestApi").values()
    paths = api["Properties"]["Body"]["paths"]
    # When each route's security is read
    security = {
        (method.upper(), path): [name for requirement in op.get("security") or [] for name in requirement]
        for path, operations in paths.items()
        for method, op in operations.items()
    }
    # Then every management route needs a SigV4 signature, and the webhook (Docker Hub cannot sign) none
    webhook = {route for route in security if route[1].startswith("/webhooks/")}
    assert webhook == {("POST", "/webhooks/dockerhub"), ("POST", "/webhooks/dockerhub/{token}")}
    assert all(security[route] == ["AWS_IAM"] for route in set(security) - webhook), security
    assert all(security[route] in ([], ["NONE"]) for route in webhook), security


def test_webhook_url_output_matches_the_route(sam: Template) -> None:
    # Given the webhook route and the WebhookUrl output
    api = sam["Resources"]["PatchpropApi"]["Properties"]
    event = sam["Resources"]["WebhookFunction"]["Properties"]["Events"]["DockerHubWebhook"]["Properties"]
    url = sam["Outputs"]["WebhookUrl"]["Value"]["Fn::Sub"]
    # When the route is written without its token
    prefix = event["Path"].removesuffix("{token}")
    # Then the output is the stage URL of that prefix, to which the token is appended
    assert event["Method"].upper() == "POST"
    assert url.endswith(f"/{api['StageName']}{prefix}")


def _required_env_vars(handler: Path) -> set[str]:
    """Fields without a default of the handler's `class Env(...)` settings model."""
    tree = ast.parse(handler.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "Env":
            return {
                item.target.id
                for item in node.body
                if isinstance(item, ast.AnnAssign)
                and isinstance(item.target, ast.Name)
                and item.value is None
            }
    return set()


def test_every_function_gets_the_environment_its_handler_requires(sam: Template) -> None:
    # Given each function of the template and its handler's Env model
    functions = resources_of(sam, "AWS::Serverless::Function")
    global_vars = set(sam["Globals"]["Function"]["Environment"]["Variables"])
    missing = {}
    for name, function in functions.items():
        handler = REPO / function["Properties"]["CodeUri"] / "app.py"
        assert handler.is_file(), f"{name}: no {handler}"
        # When the variables the handler requires are compared with those the template sets
        configured = global_vars | set(function["Properties"].get("Environment", {}).get("Variables", {}))
        if gaps := _required_env_vars(handler) - configured:
            missing[name] = sorted(gaps)
    # Then none is missing
    assert missing == {}


# ---------------------------------------------------------------- scan, gate and tell


def _grants(cfn: Template, action: str) -> list[tuple[str, str]]:
    """(role, resource text) for every grant of `action` in the deployed template."""
    found = []
    for name, resource in cfn["Resources"].items():
        properties = resource.get("Properties", {})
        for _, document in _policy_documents(properties, name):
            for statement in _as_list(document["Statement"]):
                for branch in _branches(statement):
                    if action in _as_list(branch.get("Action", [])):
                        role = referenced_id(properties.get("RoleName")) or name
                        found += [(role, "".join(literal_strings(r))) for r in _as_list(branch["Resource"])]
    return found


def test_build_events_reads_back_builds_of_exactly_the_named_projects_and_only_reports(cfn: Template) -> None:
    # Given the deployed template for two named projects
    projects = sam_to_cfn.FAKE_PARAMETERS["RebuildProjects"].split(",")
    # When the grants to read builds and report objects are collected
    builds, reports = _grants(cfn, "codebuild:BatchGetBuilds"), _grants(cfn, "s3:GetObject")
    # Then build events may read those projects' builds, and objects under reports/ alone
    arn = "arn:${AWS::Partition}:codebuild:${AWS::Region}:${AWS::AccountId}:project/"
    # (and the poller, whose reconciler of the cap counts the builds running in them)
    readers = ("BuildEventsFunctionRole", "PollerFunctionRole")
    assert sorted(builds) == sorted((role, arn + p) for p in projects for role in readers)
    # (and the API, whose promotion by hand attaches the rebuild's SBOM and scan report)
    assert sorted(reports) == [
        ("ApiFunctionRole", "${ReportsBucket.Arn}/base-reports/*"),  # a rescan by hand
        ("ApiFunctionRole", "${ReportsBucket.Arn}/reports/*"),
        ("BuildEventsFunctionRole", "${ReportsBucket.Arn}/reports/*"),
        ("BuildEventsFunctionRole", "${ReportsBucket.Arn}/rescans/*"),  # a rescan's report
        ("PlannerFunctionRole", "${ReportsBucket.Arn}/base-reports/*"),  # the base check
        ("PlannerFunctionRole", "${ReportsBucket.Arn}/reports/*"),
        # the poller's rescans of promoted images read the base's report (OwnPackageRescansPerDay)
        ("PollerFunctionRole", "${ReportsBucket.Arn}/base-reports/*"),
        ("PollerFunctionRole", "${ReportsBucket.Arn}/reports/*"),
    ]
    # and the reference project writes under reports/, and a check-only scan under base-reports/
    assert sorted(_grants(cfn, "s3:PutObject")) == [
        ("RebuildProjectRole", "${ReportsBucket.Arn}/base-reports/*"),
        ("RebuildProjectRole", "${ReportsBucket.Arn}/reports/*"),
        ("RebuildProjectRole", "${ReportsBucket.Arn}/rescans/*"),
    ]


def test_reports_bucket_is_private_encrypted_tls_only_and_expires_reports(sam: Template) -> None:
    # Given the reports bucket and its policy
    bucket = sam["Resources"]["ReportsBucket"]["Properties"]
    policy = sam["Resources"]["ReportsBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    # Then no public access, encryption at rest, expiry after 90 days, and no plain HTTP
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert [r["ExpirationInDays"] for r in bucket["LifecycleConfiguration"]["Rules"]] == [90]
    (tls,) = policy
    assert tls["Effect"] == "Deny" and tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_reference_project_runs_the_repository_buildspec(sam: Template) -> None:
    # Given the reference CodeBuild project, whose buildspec is inlined (it has no source of its own)
    import yaml

    project = sam["Resources"]["RebuildProject"]["Properties"]
    inlined = yaml.safe_load(project["Source"]["BuildSpec"])
    # When it is compared with buildspec.yml
    reference = yaml.safe_load((REPO / "buildspec.yml").read_text(encoding="utf-8"))
    # Then they are the same, the result is exported for build events, and BuildKit can run
    assert inlined == reference
    assert inlined["env"]["exported-variables"] == ["PATCHPROP_RESULT"]
    assert "bash buildspec/rebuild.sh" in inlined["phases"]["build"]["commands"]
    assert project["Source"]["Type"] == "NO_SOURCE" and project["Environment"]["PrivilegedMode"] is True


def test_slack_resources_exist_only_with_a_webhook_secret(sam: Template) -> None:
    # Given every resource that takes part in posting to Slack
    slack = {name: r for name, r in sam["Resources"].items() if name.startswith("Slack")}
    assert set(slack) >= {"SlackQueue", "SlackDLQ", "SlackFunction", "SlackSubscription", "SlackDLQAlarm"}
    # Then each is conditional on the secret, and the function posts one message at a time
    assert {r.get("Condition") for r in slack.values()} == {"HasSlackWebhook"}
    function = slack["SlackFunction"]["Properties"]
    assert function["ReservedConcurrentExecutions"] == 1
    (event,) = function["Events"].values()
    assert event["Properties"]["BatchSize"] == 1
    assert slack["SlackSubscription"]["Properties"]["RawMessageDelivery"] is True


def test_notification_format_and_scan_requirement_reach_the_functions(sam: Template) -> None:
    # Given the functions that publish outcomes
    env = {
        name: sam["Resources"][name]["Properties"]["Environment"]["Variables"]
        for name in ("BuildEventsFunction", "RebuilderFunction")
    }
    # Then both write in the chosen format, and build events knows whether a scan is required
    assert {e["NOTIFY_FORMAT"]["Ref"] for e in env.values()} == {"NotificationFormat"}
    assert env["BuildEventsFunction"]["REQUIRE_SCAN"] == {"Ref": "RequireScan"}
    assert sam["Parameters"]["NotificationFormat"]["AllowedValues"] == ["email", "chatbot"]


# ---------------------------------------------------------------- written once (Fn::ForEach)


def _role_of(cfn: Template, function: str) -> str:
    return str(referenced_id(cfn["Resources"][function]["Properties"]["Role"]))


def _policies_of_role(cfn: Template, role: str) -> list[tuple[str, dict[str, Any]]]:
    """(resource, policy document) for the role's inline policies and the RolePolicies attached to it."""
    inline = _policy_documents(cfn["Resources"][role]["Properties"].get("Policies", []), role)
    found = [(role, document) for _, document in inline]
    for name, resource in resources_of(cfn, "AWS::IAM::RolePolicy").items():
        if referenced_id(resource["Properties"]["RoleName"]) == role:
            found.append((name, resource["Properties"]["PolicyDocument"]))
    return found


def test_each_function_writes_logs_only_to_its_own_log_group(cfn: Template) -> None:
    # Given every function and the log group it logs to
    for function, resource in resources_of(cfn, "AWS::Lambda::Function").items():
        group = referenced_id(resource["Properties"]["LoggingConfig"]["LogGroup"])
        # When the log writes its role is granted are collected
        targets = {
            referenced_id(target)
            for _, document in _policies_of_role(cfn, _role_of(cfn, function))
            for statement in _as_list(document["Statement"])
            if "logs:PutLogEvents" in _as_list(statement.get("Action", []))
            for target in _as_list(statement["Resource"])
        }
        # Then they are on that log group alone
        assert targets == {group}, function


def test_functions_with_an_sqs_source_are_created_after_the_policy_that_lets_them_poll(cfn: Template) -> None:
    # Given each SQS event source mapping (CloudFormation checks its role may poll when it creates one)
    for mapping in resources_of(cfn, "AWS::Lambda::EventSourceMapping").values():
        function = str(referenced_id(mapping["Properties"]["FunctionName"]))
        queue = referenced_id(mapping["Properties"]["EventSourceArn"])
        depends = _as_list(cfn["Resources"][function].get("DependsOn", []))
        # When the policies that grant sqs:ReceiveMessage on its queue are found
        granting = {
            name
            for name, document in _policies_of_role(cfn, _role_of(cfn, function))
            for statement in _as_list(document["Statement"])
            if "sqs:ReceiveMessage" in _as_list(statement.get("Action", []))
            and queue in {referenced_id(r) for r in _as_list(statement["Resource"])}
        }
        # Then one exists, and it is the role's own (created with it) or one the function waits for
        assert granting, function
        assert granting & {_role_of(cfn, function), *depends}, (function, granting, depends)


def test_the_local_reader_expands_the_template_as_the_deployed_one_is(sam: Template, cfn: Template) -> None:
    # Given the template expanded by the local stack's reader (Fn::ForEach), for the same parameters
    from patchprop_local.template import without_language_extensions

    parameters = {**{k: v.get("Default") for k, v in sam["Parameters"].items()}, **sam_to_cfn.FAKE_PARAMETERS}
    local = without_language_extensions(copy.deepcopy(sam), parameters)

    # When its resources are compared with the deployed template's (SAM adds roles of its own)
    def names(template: Template, kind: str) -> set[str]:
        return set(resources_of(template, kind))

    # Then it has the same queues, alarms and log groups and every role, none of them left as a loop
    for kind in ("AWS::SQS::Queue", "AWS::CloudWatch::Alarm", "AWS::Logs::LogGroup"):
        assert names(local, kind) == names(cfn, kind), kind
    assert names(local, "AWS::IAM::Role") <= names(cfn, "AWS::IAM::Role")
    assert len(names(local, "AWS::SQS::Queue")) == 9 and len(names(local, "AWS::Logs::LogGroup")) == 9
    assert not [key for key in local["Resources"] if key.startswith("Fn::ForEach::")]


def test_for_each_fills_logical_ids_in_get_att_and_ref() -> None:
    # Given a loop whose resources name each other through Fn::Sub, as the template's do
    from patchprop_local.template import expand_for_each

    fragment = {
        "Fn::ForEach::Queues": [
            "Queue",
            ["Patch", "golden-images"],
            {
                "&{Queue}DLQAlarm": {
                    "Properties": {
                        "Queue": {"Fn::GetAtt": [{"Fn::Sub": "&{Queue}DLQ"}, "QueueName"]},
                        "Topic": {"Ref": {"Fn::Sub": "${Queue}Topic"}},
                        "Name": {"Fn::Sub": "${AWS::StackName}-${Queue}"},
                    }
                }
            },
        ]
    }
    # When it is expanded
    expanded = expand_for_each(fragment, {})
    # Then each resource names its own, as literals, and other Fn::Subs stay
    assert expanded["goldenimagesDLQAlarm"]["Properties"] == {
        "Queue": {"Fn::GetAtt": ["goldenimagesDLQ", "QueueName"]},
        "Topic": {"Ref": "golden-imagesTopic"},
        "Name": {"Fn::Sub": "${AWS::StackName}-golden-images"},
    }
    assert set(expanded) == {"PatchDLQAlarm", "goldenimagesDLQAlarm"}


def test_own_package_rescans_are_off_by_default_and_send_only_to_the_rebuild_queue(cfn: Template) -> None:
    # Given the template's parameter for rescans of promoted images
    parameter = cfn["Parameters"]["OwnPackageRescansPerDay"]
    # Then it is off unless set, and the poller it reaches may send rebuilds to the RebuildQueue only
    assert parameter["Default"] == 0 and parameter["MinValue"] == 0
    env = cfn["Resources"]["PollerFunction"]["Properties"]["Environment"]["Variables"]
    assert env["OWN_PACKAGE_RESCANS_PER_DAY"] == {"Ref": "OwnPackageRescansPerDay"}
    policy = cfn["Resources"]["PollerFunctionPolicy"]["Properties"]
    sends = [
        referenced_id(resource)
        for _, document in _policy_documents(policy, "PollerFunctionPolicy")
        for statement in _as_list(document["Statement"])
        for branch in _branches(statement)
        if "sqs:SendMessage" in _as_list(branch.get("Action", []))
        for resource in _as_list(branch["Resource"])
    ]
    assert sorted(str(s) for s in sends) == ["PatchQueue", "PollerDLQ", "RebuildQueue"]


# ---------------------------------------------------------------- signing promoted digests

KMS_KEY = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def _kms_grants(cfn: Template) -> dict[str, set[str]]:
    """{kms action: the roles granted it}, each grant's resources checked to be the key's Ref."""
    found: dict[str, set[str]] = {}
    for name, resource in cfn["Resources"].items():
        if name == "BaseKeyKmsKeysPolicy":  # the planner reads base keys' public halves: tested below
            continue
        properties = resource.get("Properties", {})
        for _, document in _policy_documents(properties, name):
            for statement in _as_list(document["Statement"]):
                for branch in _branches(statement):
                    for action in (
                        a for a in _as_list(branch.get("Action", [])) if str(a).startswith("kms:")
                    ):
                        assert _as_list(branch["Resource"]) == [{"Ref": "CosignKmsKeyArn"}], (name, action)
                        role = referenced_id(properties.get("RoleName")) or name
                        found.setdefault(str(action), set()).add(role)
    return found


def test_promoting_functions_may_sign_with_exactly_the_cosign_key_and_only_when_it_is_set(
    cfn: Template,
) -> None:
    # Given the deployed template with a CosignKmsKeyArn
    signing = sam_to_cfn.translate(TEMPLATE, {"CosignKmsKeyArn": KMS_KEY})
    # When its kms grants are collected (each checked to name only the key's ARN)
    grants = _kms_grants(signing)
    # Then the two functions that move tags (build-events, the API's promote) may Sign and read
    # the public key, and only the reference project besides them
    promoters = {"BuildEventsFunctionRole", "ApiFunctionRole"}
    assert grants["kms:Sign"] == promoters | {"RebuildProjectRole"}
    assert grants["kms:GetPublicKey"] == promoters | {"RebuildProjectRole"}
    assert set(grants) == {"kms:Sign", "kms:GetPublicKey", "kms:DescribeKey"}
    # And each such grant exists only under HasCosignKmsKey, with the key in the functions' env
    for policy in ("BuildEventsFunctionPolicy", "ApiFunctionPolicy"):
        statements = signing["Resources"][policy]["Properties"]["PolicyDocument"]["Statement"]
        conditional = [
            s["Fn::If"] for s in statements if "Fn::If" in s and s["Fn::If"][0] == "HasCosignKmsKey"
        ]
        assert [c[1]["Action"] for c in conditional] == [["kms:Sign", "kms:GetPublicKey"]]
    for function in ("BuildEventsFunction", "ApiFunction"):
        variables = signing["Resources"][function]["Properties"]["Environment"]["Variables"]
        assert variables["SIGNING_KEY_ARN"] == {"Fn::If": ["HasCosignKmsKey", {"Ref": "CosignKmsKeyArn"}, ""]}


def test_the_planner_reads_only_the_named_base_keys_and_only_when_some_are_named(cfn: Template) -> None:
    # Each key store's grant is its own policy, on the planner's role alone, conditional on its list
    resources = cfn["Resources"]
    expected = {
        "BaseKeyParametersPolicy": ("ssm:GetParameter", "BaseKeyParameterArns", "HasBaseKeyParameters"),
        "BaseKeySecretsPolicy": ("secretsmanager:GetSecretValue", "BaseKeySecretArns", "HasBaseKeySecrets"),
        "BaseKeyKmsKeysPolicy": ("kms:GetPublicKey", "BaseKeyKmsKeyArns", "HasBaseKeyKmsKeys"),
    }
    for name, (action, parameter, condition) in expected.items():
        policy = resources[name]
        assert policy["Condition"] == condition
        assert [referenced_id(r) for r in policy["Properties"]["Roles"]] == ["PlannerFunctionRole"]
        [statement] = policy["Properties"]["PolicyDocument"]["Statement"]
        assert statement["Action"] == action and referenced_id(statement["Resource"]) == parameter
        assert cfn["Parameters"][parameter]["Default"] == ""
    # and no other policy grants these actions
    for name, resource in resources.items():
        if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::RolePolicy") and name not in expected:
            text = json.dumps(resource["Properties"]["PolicyDocument"])
            assert "ssm:GetParameter" not in text, name
    # (kms:GetPublicKey elsewhere is only the signers' on CosignKmsKeyArn: see _kms_grants)
    assert _kms_grants(cfn).get("kms:GetPublicKey", set()) <= {
        "BuildEventsFunctionRole",
        "ApiFunctionRole",
        "RebuildProjectRole",
    }
