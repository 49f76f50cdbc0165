"""`patchprop register|update|list|show|remove|bases|rebuilds|graph`: the management API for people.

Each prints a readable table, or with --json the API's answer unchanged (for scripts). Progress
goes to stderr, so --json output stays clean.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from patchprop.domain.models import Dependent
from patchprop_cli.client import ApiClient, ApiError
from patchprop_cli.graph import mark, to_dot, to_mermaid

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

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
)
# API field -> the option that set it, so a refusal names what the user typed.
OPTION_OF_FIELD = {
    "image": "--image",
    **{name: option.split("/")[0] for name, option, _ in DEPENDENT_OPTIONS},
    "status": "--status",
    "limit": "--limit",
    "base": "--base",
}


def dependent_options(*, registering: bool) -> Callable[[F], F]:
    """The dependent's settings as options: with Dependent's defaults when registering, else unset."""

    def decorate(command: F) -> F:
        for name, option, settings in reversed(DEPENDENT_OPTIONS):
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


def progress(items: Sequence[T], label: str) -> Iterator[T]:
    """The items, with a progress bar on stderr when there are several and stderr is a terminal."""
    if len(items) < 2 or not sys.stderr.isatty():
        yield from items
        return
    with click.progressbar(items, label=label, file=sys.stderr, show_pos=True) as bar:
        yield from bar


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Plain columns, two spaces apart, the last one not padded."""
    cells = [[str(c) for c in headers]] + [
        ["-" if c is None or c == "" else str(c) for c in row] for row in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row[:-1], widths, strict=False)) + "  " + row[-1]
        for row in cells
    ]
    return "\n".join(line.rstrip() for line in lines)


def short(digest: str | None) -> str:
    """`sha256:0123456789ab`: enough to tell digests apart in a table."""
    return digest[:19] if digest else "-"


def when(stamp: str | None) -> str:
    """An ISO timestamp to the second, `T` as a space."""
    return stamp[:19].replace("T", " ") if stamp else "-"


def build_args_of(pairs: Iterable[str]) -> dict[str, str]:
    args = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="--build-arg")
        args[name] = value
    return args


# ---- register and update --------------------------------------------------------------------


@click.command()
@click.option("--image", required=True, help=Dependent.model_fields["image"].description)
@dependent_options(registering=True)
@api_options
def register(
    image: str,
    bases: tuple[str, ...],
    project: str,
    owner: str | None,
    source_location: str | None,
    source_version: str | None,
    build_args: tuple[str, ...],
    auto_rebuild: bool,
    cooldown_seconds: int,
    policy: str | None,
    test_command: str | None,
    api_url: str | None,
    as_json: bool,
) -> None:
    """Register an image built on one or more bases (or replace its registration)."""
    from patchprop_cli.client import register_dependent

    args = build_args_of(build_args)
    client = ApiClient.for_url(api_url)
    with refusals_name_options():
        answer = register_dependent(
            image,
            list(bases),
            project,
            owner,
            args,
            source_location,
            source_version,
            auto_rebuild=auto_rebuild,
            cooldown_seconds=cooldown_seconds,
            policy=policy,
            test_command=test_command,
            client=client,
        )
    if as_json:
        echo_json(answer)
        return
    dependent = answer["dependent"]
    verb = "registered" if answer["created"] else "updated"
    click.echo(
        f"{verb} {dependent['image']} on {', '.join(dependent['bases'])} "
        f"(CodeBuild project {dependent['project']})"
    )
    if answer["created"]:
        click.echo(
            "The next poll or webhook records each base's current digest; changes after that rebuild it."
        )


@click.command()
@click.argument("image")
@dependent_options(registering=False)
@api_options
def update(
    image: str,
    bases: tuple[str, ...],
    project: str | None,
    owner: str | None,
    source_location: str | None,
    source_version: str | None,
    build_args: tuple[str, ...],
    auto_rebuild: bool | None,
    cooldown_seconds: int | None,
    policy: str | None,
    test_command: str | None,
    api_url: str | None,
    as_json: bool,
) -> None:
    """Change some settings of a registered image (the others stay as they are)."""
    changes: dict[str, Any] = {
        "bases": list(bases) or None,
        "project": project,
        "owner": owner,
        "source_location": source_location,
        "source_version": source_version,
        "build_args": build_args_of(build_args) if build_args else None,
        "auto_rebuild": auto_rebuild,
        "cooldown_seconds": cooldown_seconds,
        "policy": policy,
        "test_command": test_command,
    }
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        raise click.UsageError("nothing to change: give at least one option (see --help)")
    with refusals_name_options(image="IMAGE"):
        from patchprop.logic.catalog import DependentChanges
        from patchprop_cli.client import check_request

        check_request(DependentChanges, changes)
        answer = ApiClient.for_url(api_url).patch("/dependents", changes, image=image)
    if as_json:
        echo_json(answer)
        return
    click.echo(f"updated {answer['dependent']['image']}: {', '.join(sorted(changes))}")


# ---- reading ----------------------------------------------------------------------------------


@click.command("list")
@api_options
def list_dependents(api_url: str | None, as_json: bool) -> None:
    """List the registered images."""
    answer = ApiClient.for_url(api_url).get("/dependents")
    if as_json:
        echo_json(answer)
        return
    dependents = answer["dependents"]
    if not dependents:
        click.echo("No images registered yet: see `patchprop register --help`.")
        return
    click.echo(
        table(
            ["IMAGE", "PROJECT", "OWNER", "AUTO", "COOLDOWN", "BASES"],
            [
                [
                    d["image"],
                    d["project"],
                    d.get("owner"),
                    "yes" if d["auto_rebuild"] else "no",
                    f"{d.get('cooldown_seconds', 0)}s",
                    ", ".join(d["bases"]),
                ]
                for d in dependents
            ],
        )
    )


@click.command()
@click.argument("image")
@api_options
def show(image: str, api_url: str | None, as_json: bool) -> None:
    """Show one image: how it is rebuilt, its bases and their digests, its last rebuilds."""
    with refusals_name_options(image="IMAGE"):
        answer = ApiClient.for_url(api_url).get("/dependents/one", image=image)
    if as_json:
        echo_json(answer)
        return
    d = answer["dependent"]
    source = " @ ".join(s for s in (d.get("source_location"), d.get("source_version")) if s) or "-"
    facts = [
        ("image", d["image"]),
        ("project", d["project"]),
        ("owner", d.get("owner") or "-"),
        (
            "auto-rebuild",
            ("yes" if d["auto_rebuild"] else "no") + f", cooldown {d.get('cooldown_seconds', 0)}s",
        ),
        ("policy", d.get("policy") or "default (fail on new CRITICAL or HIGH of its own)"),
        ("source", source),
        ("build args", " ".join(f"{k}={v}" for k, v in sorted(d.get("build_args", {}).items())) or "-"),
        ("built on it", ", ".join(answer["built_on_it"]) or "-"),
    ]
    for name, value in facts:
        click.echo(f"{name + ':':<13} {value}")
    click.echo(
        "\n"
        + table(
            ["BASE", "DIGEST", "PREVIOUS", "CHANGED"],
            [
                [b["ref"], short(b.get("digest")), short(b.get("previous_digest")), when(b.get("changed_at"))]
                for b in answer["bases"]
            ],
        )
    )
    rebuilds = answer["rebuilds"]
    click.echo("\nLast rebuilds:" if rebuilds else "\nNo rebuilds yet.")
    if rebuilds:
        click.echo(rebuild_table(rebuilds, with_image=False))


@click.command()
@click.argument("images", nargs=-1, required=True)
@api_options
def remove(images: tuple[str, ...], api_url: str | None, as_json: bool) -> None:
    """Stop tracking images (their bases stay tracked; images built on them stay registered)."""
    client = ApiClient.for_url(api_url)
    removed: list[str] = []
    failed: list[str] = []
    for image in progress(list(images), "removing"):
        try:
            removed.append(client.delete("/dependents", image=image)["removed"])
        except ApiError as exc:
            failed.append(f"{image}: {exc.format_message()}")
    if as_json:
        echo_json({"removed": removed, "failed": failed})
    else:
        for image in removed:
            click.echo(f"removed {image}")
    if failed:
        raise click.ClickException("\n".join(failed))


@click.command()
@api_options
def bases(api_url: str | None, as_json: bool) -> None:
    """List the tracked bases: last digest, when it moved, how many images are built on each."""
    answer = ApiClient.for_url(api_url).get("/bases")
    if as_json:
        echo_json(answer)
        return
    if not answer["bases"]:
        click.echo("No bases tracked yet: register an image built on one.")
        return
    click.echo(
        table(
            ["BASE", "DIGEST", "PREVIOUS", "CHANGED", "IMAGES"],
            [
                [
                    b["ref"],
                    short(b.get("digest")),
                    short(b.get("previous_digest")),
                    when(b.get("changed_at")),
                    b.get("dependents", 0),
                ]
                for b in answer["bases"]
            ],
        )
    )


def rebuild_table(rebuilds: list[dict[str, Any]], with_image: bool = True) -> str:
    headers = [
        "DETECTED",
        *(["IMAGE"] if with_image else []),
        "BASE",
        "BASE DIGEST",
        "STATUS",
        "BUILD / REASON",
    ]
    rows = []
    for r in rebuilds:
        status = r["status"] + (" !" if mark({"last_rebuild": r}) else "")
        rows.append(
            [
                when(r.get("detected_at")),
                *([r["image"]] if with_image else []),
                r["base"],
                short(r.get("base_digest")),
                status,
                r.get("build_id") or r.get("reason"),
            ]
        )
    return table(headers, rows)


@click.command()
@click.option("--image", default=None, help="Only this image's rebuilds.")
@click.option("--base", default=None, help="Only rebuilds on this (direct) base.")
@click.option("--status", default=None, help="Only rebuilds in this status (e.g. FAILED, SUCCEEDED).")
@click.option(
    "--limit", type=click.IntRange(1, 1000), default=50, show_default=True, help="At most this many."
)
@api_options
def rebuilds(
    image: str | None, base: str | None, status: str | None, limit: int, api_url: str | None, as_json: bool
) -> None:
    """Rebuild history, newest first."""
    with refusals_name_options():
        answer = ApiClient.for_url(api_url).get(
            "/rebuilds", image=image, base=base, status=status.upper() if status else None, limit=limit
        )
    if as_json:
        echo_json(answer)
        return
    if not answer["rebuilds"]:
        click.echo("No rebuilds match.")
        return
    click.echo(rebuild_table(answer["rebuilds"]))


@click.command()
@click.option("--base", default=None, help="Only what this base's move rebuilds (transitively).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mermaid", "dot", "json"]),
    default="mermaid",
    show_default=True,
    help="Mermaid (`graph TD`), Graphviz DOT, or the API's JSON.",
)
@api_options
def graph(base: str | None, fmt: str, api_url: str | None, as_json: bool) -> None:
    """The dependency graph, whole or one base's affected set; failed or blocked images marked."""
    with refusals_name_options():
        answer = ApiClient.for_url(api_url).get("/graph", base=base)
    if as_json or fmt == "json":
        echo_json(answer)
    elif fmt == "dot":
        click.echo(to_dot(answer), nl=False)
    else:
        click.echo(to_mermaid(answer), nl=False)
