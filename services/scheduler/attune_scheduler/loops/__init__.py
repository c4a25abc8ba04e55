"""The scheduler's background loops, one a module; scheduler.py starts and stops them together."""
