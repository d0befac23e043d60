"""QA of auto-sent replies: recording one rating per reply and the `slack_post_qa` outbox kind."""
