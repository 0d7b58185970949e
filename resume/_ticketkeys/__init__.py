"""Shared ticket keys for a fleet of servers: the key ring and its sources."""
