"""Generate docs/schemas (JSON Schema of every contract event) and docs/asyncapi (per service)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from shared import signatures
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


#: The Kafka headers of a participant's submission (docs/security.md, "Signed submissions").
SIGNED_HEADERS = {
    "type": "object", "required": [signatures.HEADER],
    "properties": {signatures.HEADER: {
        "type": "string", "pattern": r"^[A-Za-z0-9_-]+\.\.[A-Za-z0-9_-]+$",
        "description": "The sender's signature of the record's value bytes: a JWS in compact "
                       "serialisation with the payload detached (RFC 7515 appendix F), "
                       "protected header {\"alg\": \"EdDSA\", \"kid\": <the participant's "
                       "registered key>}. Records without a valid one go to <topic>.rejected "
                       "(signature_missing, signature_invalid, signer_mismatch, key_revoked)."}},
}


def asyncapi_documents() -> dict[str, dict[str, object]]:
    documents = {}
    for name in ("filing", "settlement", "clearing"):
        app = importlib.import_module(f"services.{name}.app").app
        document = app.schema.to_specification().to_jsonable()
        messages = document.get("components", {}).get("messages", {})
        for key, message in messages.items():
            if any(key.endswith(f":{topic}:SubscribeMessage") for topic in
                   signatures.SIGNED_TOPICS):
                message["headers"] = SIGNED_HEADERS
        documents[f"{name}.json"] = document
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
