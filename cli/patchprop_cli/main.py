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


if __name__ == "__main__":
    cli()
