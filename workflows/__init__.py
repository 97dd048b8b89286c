"""Deterministic workflow code only: the journey interpreter and its pure helpers.

No I/O, clocks, randomness or threads here; side effects are activities, called by name.
"""
