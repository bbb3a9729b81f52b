"""One logical call between a resource and the wire: the engine, attempts, the request built
once, the retry loop, fallbacks, the cache, deadlines and streams."""
