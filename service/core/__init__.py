"""The pure core: events in, effects out.

Nothing in this package imports Flask, SQLAlchemy or durable-rules; a test holds that line.
"""
