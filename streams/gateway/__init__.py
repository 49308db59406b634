"""OpenWhisk-compatible HTTP ingress gateway."""
