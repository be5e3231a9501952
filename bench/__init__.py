"""``make bench``: JournalSaver vs langgraph-checkpoint-aws's DynamoDBSaver vs InMemorySaver,
and the projector's cost, throughput and lag.

``python -m bench --help`` for the options. Modules: ``workload`` (the agent graph),
``counting`` (the botocore request hooks), ``projector`` (the real projector handler,
counted), ``batch`` (one 100-record event, handed to the handler directly), ``load``
(the sustained-load phase), ``report`` (tables, targets), ``readme`` (their block in
docs/benchmark.md), ``__main__`` (run, verify, report).
"""
