"""Fakes of the external services our providers talk to: real servers on loopback speaking each
service's documented wire format (auth, request shape, answers, error bodies, signed callbacks)."""
