"""Pure backlog logic: the backlog file's model, validation and round-trip edits."""
