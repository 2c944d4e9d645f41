"""`clearinghouse demo`: a generated province run through the three services end to end.

`province` generates the events (pure, seeded), `run` publishes them as hospitals and
agencies would while the services run and the calendar advances, `report` shows what
happened and checks it, `cli` registers the subcommand. See docs/demo.md.
"""
