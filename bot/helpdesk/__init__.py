"""Writing decisions back to the helpdesk: Zendesk, a signed webhook, or nothing (`HITL_HELPDESK`)."""
