"""What managers see: numbers and advice computed from the feedback store, never Slack calls.

- `stats/`: `model` (the typed `Stats`), `query` (`compute_stats`, SQL only), `text` (terminal).
- `oversight/`: pure rules (`whatif`, `recommend`, `signals`) and `review` (`build_review`, the queries).
- `queue`: pending reviews per tier. `manager`: the `/hitl` command (parse, compute, render).
- `digest`: the weekly oversight digest job. `charts`: the stats PNG.
- `audit`, `feedback`: JSON Lines exports. `policy_audit`: audit policy changes at start-up.
- `format`: shared formatters (rates, periods, tables).

Block Kit for all of these lives in `bot.slack.blocks.reports`.
"""
