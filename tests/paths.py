"""Where the tests find the repository and the shared real data (`../shared` beside a clone; tests
that need it skip cleanly where a clone has none)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / ".." / "shared"
SHARED_DATA = SHARED / "data"
