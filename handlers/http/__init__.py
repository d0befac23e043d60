"""HTTP routes: the ingest API and helpdesk webhooks (FastAPI routers)."""
