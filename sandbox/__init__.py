"""Local stand-ins for Slack, Zendesk and OpenAI over real HTTP, and the `hitl demo` acts. The core never imports this."""
