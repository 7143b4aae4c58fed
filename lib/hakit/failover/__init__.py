"""Failover tests: break the lab cluster on purpose, measure what a client sees, chart it."""
