"""Storage backends: raw bytes at locations, with preconditions."""
