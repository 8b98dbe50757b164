"""Rule files: loading with line numbers, validation into the intermediate form, and the
two engines compiled from it (durable-rules and the plain-Python reference)."""
