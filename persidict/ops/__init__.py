"""The functional core: command records, pure decisions, and the interpreter."""
