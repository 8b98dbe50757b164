"""The `loyalty` subcommands, one module per area. Each exposes ``register(subparsers)``,
which adds its parser(s) and sets ``handler`` to a function of the parsed arguments that
returns the exit code."""
