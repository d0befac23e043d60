"""SLA timers: pure clock and plan arithmetic (clock.py, plan.py) apart from the scheduler engine (engine.py)."""
