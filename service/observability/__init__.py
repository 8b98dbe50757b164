"""Metrics and logs: what ops watch. Framework-free except `web`, the Flask glue."""
