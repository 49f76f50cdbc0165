"""The CLI's shared options: the dependent's settings (declared once, from the model), the API's."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from patchprop.domain.models import Dependent
from patchprop_cli.client import ApiError

F = TypeVar("F", bound=Callable[..., Any])

# The dependent's settings as options: API field, option, click settings. Their help is the
# field's description in patchprop.domain.models.Dependent, as in the API's schema.
DEPENDENT_OPTIONS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("bases", "--base", {"multiple": True, "metavar": "BASE"}),
    ("project", "--project", {}),
    ("owner", "--owner", {}),
    ("source_location", "--source-location", {}),
    ("source_version", "--source-version", {}),
    ("build_args", "--build-arg", {"multiple": True, "metavar": "NAME=VALUE"}),
    ("auto_rebuild", "--auto-rebuild/--no-auto-rebuild", {}),
    ("cooldown_seconds", "--cooldown", {"type": click.IntRange(min=0), "metavar": "SECONDS"}),
    ("policy", "--policy", {"metavar": "POLICY"}),
    ("test_command", "--test-command", {"metavar": "COMMAND"}),
    ("patch_by", "--patch-by", {"type": click.Choice(["rebuild", "rebase", "auto"])}),
)
# API field -> the option that set it, so a refusal names what the user typed.
OPTION_OF_FIELD = {
    "image": "--image",
    **{name: option.split("/")[0] for name, option, _ in DEPENDENT_OPTIONS},
    "status": "--status",
    "limit": "--limit",
    "base": "--base",
}


def dependent_options(*, registering: bool, skip: tuple[str, ...] = ()) -> Callable[[F], F]:
    """The dependent's settings as options: with Dependent's defaults when registering, else unset.

    `skip`: fields the command finds itself (discover reads the bases from the Dockerfile)."""

    def decorate(command: F) -> F:
        for name, option, settings in reversed(DEPENDENT_OPTIONS):
            if name in skip:
                continue
            field = Dependent.model_fields[name]
            extra: dict[str, Any] = {"help": field.description}
            if registering:
                required = field.is_required()
                default = None if required or field.default_factory else field.default
                extra |= {"required": required, "default": default, "show_default": default not in (None, "")}
            else:
                extra |= {"default": None}
            command = click.option(option, name, **settings, **extra)(command)
        return command

    return decorate


def api_options(command: F) -> F:
    """--api-url and --json, shared by every management command."""
    command = click.option(
        "--json", "as_json", is_flag=True, help="Print the API's JSON answer (for scripts)."
    )(command)
    return api_url_option(command)


def api_url_option(command: F) -> F:
    """--api-url alone, for a command with a --json of its own (discover)."""
    return click.option(
        "--api-url",
        envvar="PATCHPROP_API_URL",
        default=None,
        metavar="URL",
        help="The stack's ApiUrl output (SigV4-signed). Default: PATCHPROP_API_URL, else the running "
        "`patchprop local`.",
    )(command)


@contextmanager
def refusals_name_options(**names: str) -> Iterator[None]:
    """An API refusal that names a field becomes a usage error naming the option (exit 2).

    `names` overrides OPTION_OF_FIELD, e.g. image="IMAGE" where the image is an argument."""
    options = {**OPTION_OF_FIELD, **names}
    try:
        yield
    except ApiError as exc:
        field = (exc.field or "").split(".")[0]
        if exc.status in (400, 403, 409) and field in options:
            message = exc.message.removeprefix(f"{exc.field}: ").removeprefix("Value error, ")
            raise click.BadParameter(message, param_hint=options[field]) from exc
        raise


def build_args_of(pairs: Iterable[str]) -> dict[str, str]:
    args = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="--build-arg")
        args[name] = value
    return args


# ---- register and update --------------------------------------------------------------------
