"""The I/O-free core: session handles, the cache, the key, the client policy and the offer."""
