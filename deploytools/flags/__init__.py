"""Feature flags: the plan (``config/flags.toml``), the flagd state file, the bucketing rule."""
