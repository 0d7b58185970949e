"""Stores for exported sessions (memory, SQLite, Redis) and the link that puts one under a cache."""
