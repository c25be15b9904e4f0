"""``python -m edgekit_runtime.cli``: the ``edgekit-runtime`` command."""

import sys

from edgekit_runtime.cli import main

sys.exit(main())
