"""The shared core: settings, SQL tables, the job state machine, the Redis key contract."""
