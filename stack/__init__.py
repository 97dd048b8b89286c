"""The composition root: the whole product started together (Temporal dev server, worker,
API, mailbox, example journeys), as `journeys up`, the authors' testing kit and the tests
run it."""
