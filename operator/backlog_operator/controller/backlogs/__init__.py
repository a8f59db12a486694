"""The Backlog controller: a repository's backlog file, synced and worked through."""
