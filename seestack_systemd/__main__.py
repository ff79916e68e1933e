"""``python3 -m seestack_systemd``: the same as the ``seestack-hook`` command."""

from seestack_systemd.cli.main import entry

entry()
