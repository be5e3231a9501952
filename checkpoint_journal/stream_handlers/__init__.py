"""Lambda entry points on the journal table's DynamoDB stream (projector, archiver)."""
