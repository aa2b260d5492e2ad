"""``python -m forethought``: the same as the ``forethought`` command."""

import sys

from forethought.cli import main

sys.exit(main())
