"""Decision callbacks: the outcome of a review POSTed, signed, to the `callback_url` its draft named.

`hosts` checks a URL against HITL_CALLBACK_HOSTS (at ingest and again at delivery), `queue` builds the
payload from a review in the transaction that decides it, `signing` is the HMAC-SHA256 scheme
receivers verify, and `delivery` is the outbox kind that sends it with retries and dead-lettering.
"""
