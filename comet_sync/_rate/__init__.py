"""When a request may leave the process: the limiter (and the protocol a shared one
implements), the pure rate policies, and the evidence of a server's rate headers."""
