"""Minimal stubs for the parts of botocore persidict uses."""
