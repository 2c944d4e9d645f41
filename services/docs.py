"""Generate docs/schemas (JSON Schema of every contract event) and docs/asyncapi (per service)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from shared.config import REPO_ROOT
from shared.events import PAYLOADS_BY_TOPIC, Envelope

DOCS = REPO_ROOT / "docs"


def schema_documents() -> dict[str, dict[str, object]]:
    """File name → JSON Schema of the envelope carrying that event, for every topic."""
    documents: dict[str, dict[str, object]] = {}
    for topic, payloads in PAYLOADS_BY_TOPIC.items():
        for kind, payload in payloads.items():
            schema = Envelope[payload].model_json_schema(mode="validation")  # type: ignore[valid-type]
            schema["title"] = f"{kind} on {topic}"
            schema["description"] = (payload.__doc__ or kind).strip()
            documents[f"{topic}/{kind}.json"] = schema
    return documents


def asyncapi_documents() -> dict[str, dict[str, object]]:
    documents = {}
    for name in ("filing", "settlement", "clearing"):
        app = importlib.import_module(f"services.{name}.app").app
        documents[f"{name}.json"] = app.schema.to_specification().to_jsonable()
    return documents


def render(document: dict[str, object]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def generate(docs: Path = DOCS) -> list[Path]:
    written = []
    for folder, documents in (("schemas", schema_documents()), ("asyncapi", asyncapi_documents())):
        for name, document in documents.items():
            path = docs / folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render(document), encoding="utf-8")
            written.append(path)
    return written
