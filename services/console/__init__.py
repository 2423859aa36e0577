"""Console: the JSON API (and later web UI) people use to read the audit and act on it."""
