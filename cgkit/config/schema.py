"""Publish the config file models as JSON Schema (draft 2020-12) for editors and other tools."""

from __future__ import annotations

import json
from pathlib import Path

from cgkit.config.model import EnvironmentFile, MunicipalityFile

SCHEMAS = {"environment.schema.json": EnvironmentFile, "municipality.schema.json": MunicipalityFile}


def schema_text(model: type) -> str:
    """Return the JSON Schema of ``model`` as stable, indented JSON text (ends with a newline)."""
    document = {"$schema": "https://json-schema.org/draft/2020-12/schema", **model.model_json_schema()}
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def write_schemas(folder: Path) -> list[Path]:
    """Write every schema of SCHEMAS into ``folder``; return the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, model in SCHEMAS.items():
        path = folder / name
        path.write_text(schema_text(model), encoding="utf-8")
        paths.append(path)
    return paths
