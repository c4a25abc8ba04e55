"""Attune scheduler: households, members and rituals, fired once each, on time, in their own time zone."""
