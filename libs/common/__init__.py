"""What every Courier service shares: settings, events, bus, database, storage, metrics, logs."""
