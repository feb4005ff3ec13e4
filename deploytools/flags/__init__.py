"""Feature flags: the plan (``config/flags.toml``), the flagd state file, the bucketing rule."""

DEFAULT_PLAN = "config/flags.toml"  # here, not in plan.py: the kill card hashes it without pydantic
