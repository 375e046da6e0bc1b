"""Publish the config file models as JSON Schema (draft 2020-12) for editors and other tools."""

from __future__ import annotations

import json
from pathlib import Path

from cgkit.config.model import EnvironmentFile, MunicipalityFile
from cgkit.writer import write_text

SCHEMAS = {"environment.schema.json": EnvironmentFile, "municipality.schema.json": MunicipalityFile}


def schema_text(model: type) -> str:
    """Return the JSON Schema of ``model`` as stable, indented JSON text (ends with a newline)."""
    document = {"$schema": "https://json-schema.org/draft/2020-12/schema", **model.model_json_schema()}
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def write_schemas(folder: Path, root: Path, outside_ok: bool = False) -> list[Path]:
    """Write every schema of SCHEMAS into ``folder`` through `cgkit.writer.write_text` (no link
    followed, atomic; a folder outside the project ``root`` only when ``outside_ok``); return the paths.

    Raises:
        WriteError: a schema file is a link or no regular file, the folder leads out through a link,
            or it cannot be written.
    """
    return [write_text(root, folder / name, schema_text(model), outside_ok=outside_ok) for name, model in SCHEMAS.items()]
