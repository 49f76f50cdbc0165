"""`patchprop alerts [--follow]`: the alerts `patchprop local` published, in full, as email gets them."""

from __future__ import annotations

import time

import click

from patchprop_cli.client import find_local_state

FOLLOW_EVERY = 0.5  # seconds between looks at the outbox with --follow


@click.command()
@click.option(
    "--follow", "-f", is_flag=True, help="Keep printing alerts as they are published (Ctrl-C stops)."
)
@click.option("--last", type=click.IntRange(min=1), default=None, help="Only the last N alerts.")
def alerts(follow: bool, last: int | None) -> None:
    """Print the alerts the running (or last) `patchprop local` published, subject and body."""
    from patchprop_local.narrate import read_outbox

    state = find_local_state()
    if state is None:
        raise click.UsageError("no .patchprop/ here or above: start `patchprop local` first")
    state_dir = state.parent
    kept = read_outbox(state_dir)
    if last is not None:
        kept = kept[-last:]
    if not kept and not follow:
        click.echo(f"No alerts yet in {state_dir / 'outbox'}.")
    seen = kept[-1][0] if kept else 0
    for _, alert in kept:
        _print(alert)
    while follow:
        time.sleep(FOLLOW_EVERY)
        for number, alert in read_outbox(state_dir, after=seen):
            _print(alert)
            seen = number


def _print(alert: dict) -> None:
    click.echo(f"Subject: {alert.get('subject') or '(none)'}")
    if alert.get("timestamp"):
        click.echo(f"Date:    {alert['timestamp']}")
    click.echo("")
    click.echo(alert.get("message") or "")
    click.echo("-" * 72)
