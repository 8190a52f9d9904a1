"""Storage: the SQL database (the source of truth), its migrations, and Redis (wake-up calls
and shared counters)."""
