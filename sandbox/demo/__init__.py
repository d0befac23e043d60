"""`hitl demo`: the whole loop offline; `runner.ACTS` runs each act with a `DemoContext`."""
