"""One attempt on the wire: the transport and its watchdog, body reading, the error boundary,
server-sent events and header parsing."""
