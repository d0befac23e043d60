"""The durable outbox: every outside write is a row committed with its cause, delivered with backoff.

`kinds`: each kind's typed payload and its `enqueue_<kind>()`; `registry`: which handler delivers a kind
(one registry per runtime); `worker`: the delivery loop (leases, retries, dead letters).
"""
