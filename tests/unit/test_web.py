"""The one error-to-HTTP table: both HTTP functions answer patchprop's errors the same way."""

from __future__ import annotations

import json

import pytest
from support import handler

from patchprop.domain.errors import InvalidReference, NotFound, RegistryRateLimited, StoreError
from patchprop.web import HTTP_ERRORS


@pytest.mark.parametrize("function", ["webhook", "api"])
def test_a_store_failure_is_503_from_either_http_function(function):
    # Given the resolver of the webhook or of the management API
    app = __import__(handler(function).__module__).app
    # When a route raises StoreError
    answer = app.exception_handler_manager.lookup_exception_handler(StoreError)(StoreError("DynamoDB down"))
    # Then it is the table's 503, which says nothing of DynamoDB
    assert answer.status_code == 503
    assert json.loads(answer.body) == {"error": "table unavailable; retry later"}


def test_an_error_names_its_field_and_a_rate_limit_its_retry_after():
    bad = HTTP_ERRORS[InvalidReference](InvalidReference("bad name", field="repository.repo_name"))
    assert (bad.status_code, json.loads(bad.body)["field"]) == (400, "repository.repo_name")
    limited = HTTP_ERRORS[RegistryRateLimited](RegistryRateLimited("429", retry_after=7.5))
    assert (limited.status_code, limited.headers["Retry-After"]) == (503, "7")
    assert HTTP_ERRORS[NotFound](NotFound("no dependent image x")).status_code == 404


def test_a_bad_mapping_key_names_the_mapping_and_the_key() -> None:
    # Given a registration whose build-argument name is empty
    from pydantic import ValidationError

    from patchprop.domain.models import Dependent
    from patchprop.domain.validation import problems

    with pytest.raises(ValidationError) as caught:
        Dependent(image="acme/a:1", project="pp", bases=["acme/b:1"], build_args={"": "y"})
    # When its problems are said
    (problem,) = problems(caught.value)
    # Then the field is the mapping, and the message names the key
    assert problem["field"] == "build_args"
    assert problem["error"].startswith("name '': ")
