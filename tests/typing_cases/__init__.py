"""User programs that must pass ``mypy --strict`` (checked by tests/test_flags_typing.py)."""
