"""``python -m hybridsched.cli``: the same as the ``hybridsched`` command."""

from hybridsched.cli.app import main

main()
