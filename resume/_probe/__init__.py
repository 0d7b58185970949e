"""resume probe: does a server (or a fleet) resume, on TLS 1.2 and 1.3."""
