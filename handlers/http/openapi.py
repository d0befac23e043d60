"""OpenAPI pieces shared by the HTTP routes that read their own bodies: the error body, request bodies
as named components, and the step that adds those components to `/openapi.json`.

The ingest and webhook routes read the raw body themselves (to refuse more than 256 KiB before parsing
and to answer in the API's own error shape), so FastAPI does not see their body models. `json_body`
documents such a body as a `$ref` to `#/components/schemas/<Model>`, and `install_openapi` puts that
model and every model it refers to under `components.schemas`, so every `$ref` resolves.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

from handlers.http.models import ReviewCreated

REF_TEMPLATE = "#/components/schemas/{model}"

# Body models named by json_body, by component name: the routes are built once per app, the models are static.
_BODY_MODELS: dict[str, type[BaseModel]] = {}


class ErrorField(BaseModel):
    """One field of the body that is wrong."""

    field: str = Field(
        description="dotted path of the field, e.g. `customer.email`; `(body)` for the whole body"
    )
    message: str


class ErrorOut(BaseModel):
    """Every error the API answers: a stable code, a sentence for a person, and the fields at fault."""

    error: str = Field(
        description="unauthorized, too_large, invalid_json, invalid_fields, invalid_payload, not_found, "
        "method_not_allowed, not_configured, ai_unavailable, unavailable"
    )
    message: str = Field(description="what is wrong and how to fix it")
    fields: list[ErrorField] | None = Field(None, description="with `invalid_fields`: each field at fault")


def error(description: str) -> dict[str, Any]:
    """A documented error response with the shared `ErrorOut` body."""
    return {"description": description, "model": ErrorOut}


UNAVAILABLE = error("The database is unavailable; retry after the `Retry-After` seconds")
UNAUTHORIZED = error("Missing or wrong bearer token (`Authorization: Bearer <HITL_INGEST_TOKEN>`)")
OTHER_CLIENT_ERROR = error("Any other client error (unknown path, wrong method)")


BEARER = "bearer"
BEARER_SCHEME = {"type": "http", "scheme": "bearer", "description": "the server's HITL_INGEST_TOKEN"}
NEEDS_BEARER: dict[str, Any] = {"security": [{BEARER: []}]}


class WebhookIgnored(BaseModel):
    """A helpdesk webhook that needs no draft (solved, updated by an agent, no customer text, another topic)."""

    status: Literal["ignored"]
    reason: str


def webhook_responses(*, unauthorized: str, invalid: str, not_configured: str) -> dict[int | str, Any]:
    """The answers of a helpdesk webhook that drafts with the model (201 is the route's own response)."""
    return {
        200: {
            "description": "Already drafted for this ticket update, or ignored (`status: ignored`)",
            "model": ReviewCreated | WebhookIgnored,
        },
        401: error(unauthorized),
        413: error("Body over 256 KiB"),
        422: error(invalid),
        503: error(f"{not_configured}, the model is failing, or the database is unavailable"),
        "4XX": OTHER_CLIENT_ERROR,
    }


def json_body(model: type[BaseModel], *, bearer: bool = False) -> dict[str, Any]:
    """`openapi_extra` documenting a required JSON body of `model` as a component `$ref` (and the bearer token)."""
    _BODY_MODELS[model.__name__] = model
    return {
        **(NEEDS_BEARER if bearer else {}),
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": REF_TEMPLATE.format(model=model.__name__)}}},
        },
    }


def _body_components() -> dict[str, Any]:
    """The body models and every model they refer to, as OpenAPI component schemas."""
    found: dict[str, Any] = {}
    for name, model in _BODY_MODELS.items():
        schema = model.model_json_schema(ref_template=REF_TEMPLATE)
        found.update(schema.pop("$defs", {}))
        found[name] = schema
    return found


def install_openapi(app: FastAPI) -> None:
    """Make `/openapi.json` carry the body models `json_body` referred to."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            components = spec.setdefault("components", {})
            components.setdefault("securitySchemes", {})[BEARER] = BEARER_SCHEME
            schemas = components.setdefault("schemas", {})
            for name, schema in _body_components().items():
                schemas.setdefault(name, schema)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
