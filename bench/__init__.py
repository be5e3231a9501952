"""``make bench``: JournalSaver vs langgraph-checkpoint-aws's DynamoDBSaver vs InMemorySaver.

``python -m bench --help`` for the options. Modules: ``workload`` (the agent graph),
``counting`` (the botocore request hooks), ``__main__`` (run, verify, report).
"""
