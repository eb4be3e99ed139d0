"""Reading a finished run folder (`load_run`) and writing `report.html`: headline sentences, figures and
side-by-side comparisons."""

from entity_linking.lazy import lazy_exports

# name -> "module:attribute", imported on first use (one line each; sorted by module).
_LAZY = {
    "buckets_frame": "probe.report._frames:buckets_frame",
    "load_run": "probe.report._load:load_run",
    "Run": "probe.report._load:Run",
    "compare_runs": "probe.report._report:compare_runs",
    "write_report": "probe.report._report:write_report",
    "headline": "probe.report._words:headline",
}

__getattr__ = lazy_exports(__name__, _LAZY)
__all__ = [*_LAZY]
