"""The outbox is proven through the helpdesk write-back: the same runtime, stand-ins and decision fixtures."""

from tests.helpdesk.conftest import make_desk, slack, zendesk

__all__ = ["make_desk", "slack", "zendesk"]
