"""The HTTP API (FastAPI): journeys, events, customers, deliveries, inbox, enrollments."""
