"""The `streamguard` command line."""

from __future__ import annotations

import json

import typer
from rich.console import Console

from ..errors import StreamsError
from ..settings import get_settings
from ..topics import topic_names

__all__ = ["app", "console"]

app = typer.Typer(
    name="streamguard",
    help="Kafka stream-processing pipeline for security detection.",
    no_args_is_help=True,
    add_completion=False,
    # Markdown: docstring paragraphs are reflowed to the terminal instead of keeping source line breaks.
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)


@app.command("settings")
def settings_cmd() -> None:
    """Print the effective settings (from STREAMGUARD_* variables) as JSON, secrets masked."""
    typer.echo(json.dumps(get_settings().masked(), indent=2, default=str))


@app.command()
def doctor(
    timeout: float = typer.Option(5.0, help="Seconds to wait for each service."),
) -> None:
    """Check that Kafka (and MongoDB, if a URI is set) answer; exit 1 if one does not."""
    from ..kafka import ping_kafka
    from ..mongo import connect_mongo

    s = get_settings()
    ok = True
    try:
        n = ping_kafka(s.kafka_bootstrap, timeout)
        console.print(f"[green]ok[/] Kafka at {s.kafka_bootstrap}: {n} broker(s)")
    except StreamsError as exc:
        ok = False
        console.print(f"[red]fail[/] {exc}")
    if s.mongo_uri is None:
        console.print("[yellow]skip[/] MongoDB: STREAMGUARD_MONGO_URI is not set")
    else:
        try:
            client = connect_mongo(s.mongo_uri.get_secret_value(), int(timeout * 1000))
            version = client.server_info().get("version", "?")
            client.close()
            console.print(f"[green]ok[/] MongoDB-protocol server answers (version {version})")
        except StreamsError as exc:
            ok = False
            console.print(f"[red]fail[/] {exc}")
    raise typer.Exit(0 if ok else 1)


@app.command()
def topics(
    create: bool = typer.Option(False, "--create", help="Create the topics that are missing."),
    partitions: int = typer.Option(None, help="Partitions for created topics (default: STREAMGUARD_TOPIC_PARTITIONS)."),
) -> None:
    """List streamguard's topic names (with the prefix); with --create, create missing ones."""
    from ..kafka import ensure_topics

    s = get_settings()
    all_names = topic_names(s)
    names = all_names.all()
    if create:
        try:
            created = ensure_topics(s.kafka_bootstrap, names, partitions or s.topic_partitions,
                                    per_topic=all_names.configs())
        except StreamsError as exc:
            console.print(f"[red]error[/] {exc}")
            raise typer.Exit(1) from exc
        for name in names:
            typer.echo(f"{name}\t{'created' if name in created else 'exists'}")
    else:
        for name in names:
            typer.echo(name)
