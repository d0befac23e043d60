"""Slack: the Web API client, the Slack outbox kinds (delivery.py), Block Kit builders by surface (blocks/), ids."""
