"""The journal itself: keys, items, the fold, DynamoDB and S3 I/O, hashing, the archive
format. Used by the saver, the stream handlers and the CLI; imports nothing above it."""
