"""Attacks on the clearing house, each a test against the real broker, database and services."""
