"""The `patchprop` command."""

from __future__ import annotations

import sys

import click


@click.group()
def cli() -> None:
    """patchprop: rebuild your images when their base images are patched."""


@cli.command()
def demo() -> None:
    """Run the patch path on this machine: real registry, moto, the real handlers."""
    from patchprop_cli.demo import DEPENDENTS, run_demo

    published = run_demo()
    if published != len(DEPENDENTS):
        click.secho(f"expected {len(DEPENDENTS)} SNS messages, saw {published}", fg="red", err=True)
        sys.exit(1)


@cli.command()
@click.option("--table", envvar="PATCHPROP_TABLE", required=True, help="The stack's TableName output.")
@click.option("--image", required=True, help="Your image, as it is pushed (e.g. acme/payments-api:2.4).")
@click.option("--base", "bases", multiple=True, required=True, help="A base it is built FROM (repeatable).")
@click.option("--project", required=True, help="The CodeBuild project that rebuilds it.")
@click.option("--owner", default=None, help="Team or person told about its rebuilds.")
@click.option("--source-version", default=None, help="Branch, tag or commit CodeBuild builds.")
@click.option("--build-arg", "build_args", multiple=True, help="NAME=VALUE passed as BUILD_ARG_NAME.")
@click.option("--no-auto-rebuild", is_flag=True, help="Track it, but do not rebuild it by itself.")
def register(
    table: str,
    image: str,
    bases: tuple[str, ...],
    project: str,
    owner: str | None,
    source_version: str | None,
    build_args: tuple[str, ...],
    no_auto_rebuild: bool,
) -> None:
    """Register an image built on one or more bases (written straight to the stack's table)."""
    from pydantic import ValidationError

    from patchprop.models import Dependent
    from patchprop.store import Store

    args = {}
    for pair in build_args:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="--build-arg")
        args[name] = value
    try:
        dependent = Dependent(
            image=image,
            bases=list(bases),
            project=project,
            owner=owner,
            source_version=source_version,
            build_args=args,
            auto_rebuild=not no_auto_rebuild,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0])
        option = {"bases": "--base", "build_args": "--build-arg"}.get(name, f"--{name.replace('_', '-')}")
        raise click.BadParameter(first["msg"], param_hint=option) from exc
    Store(table).put_dependent(dependent)
    click.echo(f"registered {dependent.image} on {', '.join(dependent.bases)} (CodeBuild project {project})")
    click.echo("The next poll or webhook records each base's current digest; changes after that rebuild it.")


if __name__ == "__main__":
    cli()
