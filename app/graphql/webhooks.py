"""Webhooks in the graph: account endpoints, deliveries and every attempt."""

import uuid
from datetime import datetime
from typing import Any

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from app.events import models
from app.events.webhooks import deliveries, endpoints, signing
from app.graphql.context import Info
from app.graphql.errors import UserError, perform
from app.graphql.relay import connection_field, map_optional, parse_global_id

DeliveryState = strawberry.enum(models.DeliveryState, name="WebhookDeliveryState")
WebhookEventType = strawberry.enum(
    endpoints.WebhookEventType,
    description="An event type a webhook endpoint may choose (the body's `type`, e.g. "
    "`order.placed` for ORDER_PLACED).",
)


@strawberry.type
class WebhookEndpoint(relay.Node):
    id: relay.NodeID[str]
    url: str
    description: str
    event_types: list[WebhookEventType] | None = strawberry.field(  # type: ignore[valid-type]
        description="The event types sent to this endpoint; null: every type, new ones too."
    )
    created_at: datetime

    @classmethod
    def from_row(cls, row: models.WebhookEndpoint) -> "WebhookEndpoint":
        return cls(
            id=str(row.id),
            url=row.url,
            description=row.description,
            event_types=(
                None
                if row.event_types is None
                else [endpoints.WebhookEventType(value) for value in row.event_types]
            ),
            created_at=row.created_at,
        )

    @classmethod
    def resolve_nodes(  # type: ignore[override]  # Strawberry's overloads; one impl
        cls, *, info: Info, node_ids: Any, required: bool = False
    ) -> list["WebhookEndpoint | None"]:
        # Listed by `webhookEndpoints` (admin only), not fetched by node id.
        return [None for _ in node_ids]


@strawberry.type
class WebhookAttempt:
    attempted_at: datetime
    status_code: int | None = strawberry.field(description="Null when no response came.")
    error: str | None
    duration_ms: int


@strawberry.type
class WebhookDelivery(relay.Node):
    id: relay.NodeID[str]
    url: str
    event_type: WebhookEventType  # type: ignore[valid-type]
    event_sequence: int
    state: DeliveryState  # type: ignore[valid-type]
    attempt_count: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    payload: JSON
    created_at: datetime
    completed_at: datetime | None

    @classmethod
    def from_row(cls, row: models.WebhookDelivery) -> "WebhookDelivery":
        return cls(
            id=str(row.id),
            url=row.url,
            event_type=endpoints.WebhookEventType(row.event_type),
            event_sequence=row.event_sequence,
            state=row.state,
            attempt_count=row.attempt_count,
            next_attempt_at=row.next_attempt_at,
            last_status_code=row.last_status_code,
            payload=row.payload,  # type: ignore[arg-type]
            created_at=row.created_at,
            completed_at=row.completed_at,
        )

    @classmethod
    def resolve_nodes(  # type: ignore[override]  # Strawberry's overloads; one impl
        cls, *, info: Info, node_ids: Any, required: bool = False
    ) -> list["WebhookDelivery | None"]:
        return [None for _ in node_ids]

    @strawberry.field(description="Every attempt, oldest first.")
    async def attempts(self, info: Info) -> list[WebhookAttempt]:
        rows = await info.context.loaders.webhook_attempts_by_delivery.load(uuid.UUID(self.id))
        return [
            WebhookAttempt(
                attempted_at=row.attempted_at,
                status_code=row.status_code,
                error=row.error,
                duration_ms=row.duration_ms,
            )
            for row in rows
        ]


@strawberry.type
class WebhookEndpointConnection(relay.Connection[WebhookEndpoint]):
    total_count: int


@strawberry.type
class WebhookDeliveryConnection(relay.Connection[WebhookDelivery]):
    total_count: int


@strawberry.type
class WebhookQueries:
    webhook_endpoints = connection_field(
        WebhookEndpointConnection,
        endpoints.endpoints_of,
        models.WebhookEndpoint,
        WebhookEndpoint.from_row,
        description="Your webhook endpoints in the key's mode (admin only).",
    )

    webhook_deliveries = connection_field(
        WebhookDeliveryConnection,
        deliveries.deliveries_of,
        models.WebhookDelivery,
        WebhookDelivery.from_row,
        description="Webhook deliveries, newest first, with their attempts.",
    )

    @strawberry.field(
        description="The Standard Webhooks secret that signs deliveries to your orders' "
        "callbackUrl in this mode (admin only)."
    )
    def callback_signing_secret(self, info: Info) -> str:
        principal = info.context.require_principal()
        principal.require_admin()
        return signing.callback_secret(
            info.context.settings.secret_key.get_secret_value(),
            principal.account_id,
            principal.mode,
        )


@strawberry.input
class CreateWebhookEndpointInput:
    url: str
    description: str = ""
    event_types: list[WebhookEventType] | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="Send only these event types; omitted or null: every type."
    )


@strawberry.type
class CreateWebhookEndpointPayload:
    webhook_endpoint: WebhookEndpoint | None
    secret: str | None = strawberry.field(
        description="The signing secret (whsec_…). Shown only in this response."
    )
    user_errors: list[UserError]


@strawberry.input
class DisableWebhookEndpointInput:
    id: strawberry.ID


@strawberry.type
class DisableWebhookEndpointPayload:
    webhook_endpoint: WebhookEndpoint | None
    user_errors: list[UserError]


@strawberry.type
class WebhookMutations:
    @strawberry.mutation(
        description="Send this mode's order events (all, or the chosen types) to a URL (admin)."
    )
    async def create_webhook_endpoint(
        self, info: Info, input: CreateWebhookEndpointInput
    ) -> CreateWebhookEndpointPayload | None:
        principal = info.context.require_principal()
        outcome = await perform(
            info.context.db,
            lambda session: endpoints.create_endpoint(
                session,
                principal,
                url=input.url,
                description=input.description,
                event_types=input.event_types,
            ),
        )
        row = outcome.value
        return CreateWebhookEndpointPayload(
            webhook_endpoint=map_optional(WebhookEndpoint.from_row, row),
            secret=row.secret if row else None,
            user_errors=outcome.user_errors,
        )

    @strawberry.mutation(description="Stop sending to an endpoint (admin).")
    async def disable_webhook_endpoint(
        self, info: Info, input: DisableWebhookEndpointInput
    ) -> DisableWebhookEndpointPayload | None:
        principal = info.context.require_principal()

        async def use_case(session: Any) -> models.WebhookEndpoint:
            endpoint_id = parse_global_id(input.id, "WebhookEndpoint", "id")
            return await endpoints.disable_endpoint(session, principal, endpoint_id)

        outcome = await perform(info.context.db, use_case)
        return DisableWebhookEndpointPayload(
            webhook_endpoint=outcome.map(WebhookEndpoint.from_row),
            user_errors=outcome.user_errors,
        )
