"""What the product does, apart from how it is asked: ingest and route events, publish a
journey (undone if its schedule is refused), withdraw consent, control and erase
enrollments, count funnels. The API's routes, the CLI and the testing kit call these."""
