"""Per-video jobs: their Outcome, the local process pool, the Ray cluster (--ray) and what a stage prints."""
