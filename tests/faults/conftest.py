"""Fault tests: real `ltprobe` processes killed, starved of disk, or fed broken files."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
