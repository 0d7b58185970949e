"""Thin adapters for trio and asyncio: clients and servers; no policy of their own."""
