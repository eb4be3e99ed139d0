"""Statistics of a run: count buckets, Wilson intervals, slopes and fitted trends, count dependence and its
reduction, scaling across models, diagnostics, the learning-curve views, and the run summary (`Summary`,
`build_summary`)."""

from entity_linking.lazy import lazy_exports

# name -> "module:attribute", imported on first use (one line each; sorted by module).
_LAZY = {
    "bucket_label": "probe.analysis._analysis:bucket_label",
    "bucket_of": "probe.analysis._analysis:bucket_of",
    "buckets": "probe.analysis._analysis:buckets",
    "count_dependence_lines": "probe.analysis._analysis:count_dependence_lines",
    "count_dependence_reduction": "probe.analysis._analysis:count_dependence_reduction",
    "decade_edges": "probe.analysis._analysis:decade_edges",
    "diagnose": "probe.analysis._analysis:diagnose",
    "scaling": "probe.analysis._analysis:scaling",
    "summarize": "probe.analysis._analysis:summarize",
    "summarize_models": "probe.analysis._analysis:summarize_models",
    "wilson_interval": "probe.analysis._analysis:wilson_interval",
    "add_learning_views": "probe.analysis._learning:add_learning_views",
    "checkpoint_folders": "probe.analysis._learning:checkpoint_folders",
    "error_docs": "probe.analysis._learning:error_docs",
    "model_step": "probe.analysis._learning:model_step",
    "split_revision": "probe.analysis._learning:split_revision",
    "write_errors": "probe.analysis._learning:write_errors",
    "build_summary": "probe.analysis._summary:build_summary",
    "Summary": "probe.analysis._summary:Summary",
    "truth_agreement": "probe.analysis._summary:truth_agreement",
}

__getattr__ = lazy_exports(__name__, _LAZY)
__all__ = [*_LAZY]
