"""Deploy and rollback as pipelines of steps: ``deploy`` and ``rollback`` (what each runs, in
which order, on which hosts), ``stages`` (groups of steps both use: a release made here, on
every host or shipped; the roll out; the checks), ``run`` (one run under the lock, reported)."""
