"""Reliability drills: generated hostile inputs, kill drills and their table (drills.md)."""
