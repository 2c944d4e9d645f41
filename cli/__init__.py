"""The `clearinghouse` command (`python3 -m cli`): one subcommand module per tool or
service, each with `register(subparsers)`."""
