"""Monitoring: window statistics of scored traffic and their comparison (see stats, compare)."""
