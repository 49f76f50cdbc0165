"""The `patchprop` command."""

from __future__ import annotations

import sys

import click

from patchprop_cli import commands, rebuilds_cmd

QUIET_LOGS = {"POWERTOOLS_LOG_LEVEL": "WARNING", "LOG_LEVEL": "WARNING"}


@click.group()
def cli() -> None:
    """patchprop: rebuild your images when their base images are patched."""


@cli.command()
def demo() -> None:
    """A three-level cascade on this machine: real registry, real builds, the real handlers."""
    from patchprop_cli.demo import run_demo

    if not run_demo():
        sys.exit(1)


@cli.command()
@click.option("--port", type=int, default=None, help="API port (default 8780, or a free one).")
@click.option("--aws-port", type=int, default=None, help="moto's port (default 8781, or a free one).")
@click.option("--registry-port", type=int, default=None, help="Registry port (default 8782, or a free one).")
@click.option(
    "--project",
    "projects",
    multiple=True,
    default=["patchprop-rebuild"],
    show_default=True,
    help="CodeBuild project names the local builder accepts (RebuildProjects).",
)
@click.option(
    "--poll-interval", type=float, default=None, help="Seconds between polls (default: PollSchedule)."
)
@click.option(
    "--cosign-key",
    envvar="PATCHPROP_COSIGN_KEY",
    default=None,
    metavar="KEY",
    help="Sign each promoted digest (only those) with cosign and KEY. Default: PATCHPROP_COSIGN_KEY.",
)
@click.option(
    "--base-checks",
    envvar="PATCHPROP_BASE_CHECKS",
    default="",
    metavar="JSON|@FILE",
    help="The base check's settings per base (BaseChecks), checked before anything starts.",
)
@click.option(
    "--verbose", is_flag=True, help="Also print the handlers' own logs (Powertools JSON), as Lambda would."
)
def local(
    port: int | None,
    aws_port: int | None,
    registry_port: int | None,
    projects: tuple[str, ...],
    poll_interval: float | None,
    cosign_key: str | None,
    base_checks: str,
    verbose: bool,
) -> None:
    """Run the whole system on this machine (127.0.0.1 only) until Ctrl-C."""
    import faulthandler
    import signal
    import threading

    from patchprop_local.build_source import check_tools
    from patchprop_local.lifecycle import LocalStack, LocalStackError

    for hint in check_tools():
        click.secho(f"warning: {hint}", fg="yellow", err=True)
    stack = LocalStack(
        ports={"api": port, "aws": aws_port, "registry": registry_port},
        projects=projects,
        poll_interval=poll_interval,
        signing_key=cosign_key,
        # CloudWatch's embedded metric lines mean nothing on a terminal; logs with --verbose.
        env={
            "POWERTOOLS_METRICS_DISABLED": "true",
            **({} if verbose else QUIET_LOGS),
            **({"BASE_CHECKS": checked_base_checks(base_checks)} if base_checks else {}),
        },
    )
    from patchprop_local.narrate import Narrator

    # One line per event (push, build, alert), and every alert kept in .patchprop/outbox/.
    stack.listeners.append(Narrator(stack.state_dir, lambda line: click.echo(line)))
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1 PID`: where each thread is
    try:
        info = stack.start()
    except (LocalStackError, RuntimeError) as exc:  # RuntimeError: the registry could not start
        raise click.ClickException(str(exc)) from exc
    try:
        for note in stack.notes:
            click.secho(note, fg="yellow")
        click.echo(f"API:          {info['api_url']}")
        click.echo(f"Webhook URL:  {info['webhook_url']}")
        click.echo(f"AWS endpoint: {info['aws_endpoint_url']}   (aws --endpoint-url ...)")
        click.echo(f"Registry:     {info['registry']}")
        click.echo(f"Wrote {stack.state_dir / 'local.json'}. Ctrl-C stops everything.")
        stopping.wait()
    finally:
        click.echo("stopping...")
        stack.stop()


def checked_base_checks(value: str, hint: str = "--base-checks") -> str:
    """--base-checks as JSON text (or @FILE), refused at start when an entry does not read."""
    from pathlib import Path

    from patchprop.domain.urgency import BaseSettingsError, parse_base_settings

    text = value
    if value.startswith("@"):
        try:
            text = Path(value[1:]).read_text()
        except OSError as exc:
            why = f"{value[1:]} cannot be read: {exc.strerror}"
            raise click.BadParameter(why, param_hint=hint) from exc
    try:
        parse_base_settings(text, strict=True)
    except BaseSettingsError as exc:
        raise click.BadParameter(str(exc), param_hint=hint) from exc
    return text


@cli.command("check-base-checks")
@click.argument("value", metavar="JSON|@FILE")
def check_base_checks(value: str) -> None:
    """Check a BaseChecks value before deploying it (sam deploy --parameter-overrides BaseChecks=…)."""
    from patchprop.domain.urgency import parse_base_settings

    settings = parse_base_settings(checked_base_checks(value, hint="JSON|@FILE"))
    click.echo(f"BaseChecks reads: {len(settings)} entr{'y' if len(settings) == 1 else 'ies'}")


# The management API's commands (register, update, list, show, remove, bases, rebuilds, graph).
cli.add_command(commands.register)
cli.add_command(commands.update)
cli.add_command(commands.list_dependents)
cli.add_command(commands.show)
cli.add_command(commands.remove)
cli.add_command(commands.bases)
cli.add_command(rebuilds_cmd.rebuilds)
cli.add_command(rebuilds_cmd.graph)


from patchprop_cli.alerts_cmd import alerts  # noqa: E402
from patchprop_cli.discover_cmd import discover  # noqa: E402
from patchprop_cli.gate_cmd import gate_command  # noqa: E402
from patchprop_cli.patch_cmd import patch  # noqa: E402
from patchprop_cli.poll_cmd import poll  # noqa: E402
from patchprop_cli.promote_cmd import promote, rollback  # noqa: E402
from patchprop_cli.rescan_cmd import rescan  # noqa: E402

cli.add_command(discover)
cli.add_command(gate_command)
cli.add_command(promote)
cli.add_command(rollback)
cli.add_command(poll)
cli.add_command(rescan)
cli.add_command(alerts)

from patchprop_cli.status_cmd import report, status  # noqa: E402

cli.add_command(status)
cli.add_command(report)
cli.add_command(patch)

if __name__ == "__main__":
    cli()
