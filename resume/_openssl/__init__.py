"""The guarded binding to the OpenSSL library that ssl uses: the only unsafe code (ctypes)."""
