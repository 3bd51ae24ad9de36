"""`streamguard schemas`: the JSON Schema of every wire model, for consumers of the output topics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from ..wire import WIRE_MODELS
from ._app import app

__all__ = ["SCHEMA_BASE_URL", "schema_documents", "write_schemas"]

SCHEMA_BASE_URL = "https://streamguard.local/schemas"
_DIALECT = "https://json-schema.org/draft/2020-12/schema"  # what pydantic's model_json_schema() targets


def _schema(name: str, model: Any) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema["$schema"] = _DIALECT
    schema["$id"] = f"{SCHEMA_BASE_URL}/{name}.schema.json"
    schema["title"] = model.__name__
    return schema


def schema_documents() -> dict[str, str]:
    """`<name>.schema.json` file name -> its exact text, one per entry of `WIRE_MODELS`."""
    return {
        f"{name}.schema.json": json.dumps(_schema(name, model), indent=2, sort_keys=True) + "\n"
        for name, model in WIRE_MODELS.items()
    }


def write_schemas(out_dir: Path) -> list[Path]:
    """Write every wire model's schema into `out_dir` (created if missing); return the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, text in schema_documents().items():
        path = out_dir / filename
        path.write_bytes(text.encode("utf-8"))
        written.append(path)
    return written


@app.command("schemas")
def schemas(
    out: Path = typer.Option(Path("docs/schemas"), "--out", file_okay=False,
                             help="Folder to write the <name>.schema.json files into."),
) -> None:
    """Write the JSON Schema of each wire record (threat events, healing actions, dead letters).

    One `<name>.schema.json` file per record type is written into the folder, with a stable
    `$id`, sorted keys and a trailing newline, so regenerating unchanged models changes
    nothing. The paths written are printed, one a line.
    """
    for path in write_schemas(out):
        typer.echo(str(path))
