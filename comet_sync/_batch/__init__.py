"""Many jobs through one client: the ordered fan-out, the batch engine and its JSONL files."""
