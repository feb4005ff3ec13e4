"""Running steps: the engine (timing, journal, undo on failure) and the rollout over hosts."""
