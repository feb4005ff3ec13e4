"""Pure argv builders: what to run, never how. Unit tests assert the exact lists."""
