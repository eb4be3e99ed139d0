"""`python -m probe ...`: the `ltprobe` command."""

import sys

from probe.cli import main

sys.exit(main())
