"""The e2e tier talks to a real AWS account and a deployed stack. It is collected only
when CHECKPOINT_JOURNAL_E2E=1, with CHECKPOINT_JOURNAL_TABLE and
CHECKPOINT_JOURNAL_BUCKET set to the stack's outputs and AWS credentials in the
environment (see docs/contributing.md, "Running the e2e tier")."""
