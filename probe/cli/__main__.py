"""`python -m probe.cli ...`: the `ltprobe` command."""

import sys

from probe.cli import main

sys.exit(main())
