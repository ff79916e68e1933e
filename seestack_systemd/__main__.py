"""``python3 -m seestack_systemd``: the same as the ``seestack-hook`` command."""

import sys

from seestack_systemd.cli.main import main

sys.exit(main())
