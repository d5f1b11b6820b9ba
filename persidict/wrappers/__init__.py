"""PersiDicts built from PersiDicts: write-once, cached, overlapping, expiring."""
