"""Side effects: profile lookups, template rendering, channels and the delivery ledger.

Activities live in classes built once per worker with their dependencies (stores, SMTP
settings), so tests build them against real test servers and nothing is a module global.
"""
