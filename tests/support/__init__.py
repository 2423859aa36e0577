"""Test fixtures' building blocks: real NATS, real databases, services run in-process."""
