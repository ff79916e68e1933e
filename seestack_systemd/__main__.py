"""``python3 -m seestack_systemd``: the same as the ``seestack-hook`` command."""

import sys

from .cli import main

sys.exit(main())
