"""`streamguard schemas`: the JSON Schema of every message on a topic, public and internal."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from ..internal import INTERNAL_MODELS
from ..wire import WIRE_MODELS
from ._app import app

__all__ = ["SCHEMA_BASE_URL", "schema_documents", "write_schemas"]

SCHEMA_BASE_URL = "https://streamguard.local/schemas"
_DIALECT = "https://json-schema.org/draft/2020-12/schema"  # what pydantic's model_json_schema() targets
_PUBLIC_DIR = Path("docs/schemas")
_INTERNAL_DIR = _PUBLIC_DIR / "internal"


def _schema(name: str, model: Any, base: str) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema["$schema"] = _DIALECT
    schema["$id"] = f"{base}/{name}.schema.json"
    schema["title"] = model.__name__
    return schema


def schema_documents(models: Mapping[str, Any] = WIRE_MODELS, base: str = SCHEMA_BASE_URL) -> dict[str, str]:
    """`<name>.schema.json` file name -> its exact text, one per entry of `models` (the public ones by default)."""
    return {
        f"{name}.schema.json": json.dumps(_schema(name, model, base), indent=2, sort_keys=True) + "\n"
        for name, model in models.items()
    }


def write_schemas(out_dir: Path, *, internal: bool = False) -> list[Path]:
    """Write every public (or internal) message's schema into `out_dir` (created if missing); the paths written."""
    docs = (schema_documents(INTERNAL_MODELS, f"{SCHEMA_BASE_URL}/internal") if internal
            else schema_documents())
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, text in docs.items():
        path = out_dir / filename
        path.write_bytes(text.encode("utf-8"))
        written.append(path)
    return written


@app.command("schemas")
def schemas(
    out: Annotated[Path | None, typer.Option(
        "--out", file_okay=False,
        help="Folder to write the <name>.schema.json files into (default: docs/schemas, with --internal "
             "docs/schemas/internal).")] = None,
    internal: Annotated[bool, typer.Option(
        "--internal", help="The messages between a worker's stages (entity hops, healing requests, floor "
                           "reports) instead of the public ones.")] = False,
) -> None:
    """Write the JSON Schema of each message type streamguard puts on a topic.

    Public (default): threat events, healing actions, dead letters, control envelopes
    (commands and model announcements) and status replies. With --internal: the messages on
    the worker's own topics (<app_id>-entity-hops, -to-score, -healing, -watermarks). One
    `<name>.schema.json` file per type is written into the folder, with a stable `$id`,
    sorted keys and a trailing newline, so regenerating unchanged models changes nothing.
    The paths written are printed, one a line.
    """
    folder = out if out is not None else (_INTERNAL_DIR if internal else _PUBLIC_DIR)
    for path in write_schemas(folder, internal=internal):
        typer.echo(str(path))
