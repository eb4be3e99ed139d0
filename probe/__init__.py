"""Evaluation, retrieval augmentation, long-tail generation, analysis and the `ltprobe` command."""

from entity_linking.lazy import lazy_exports

# name -> "module:attribute", imported on first use (one line each; keep sorted by module).
_LAZY = {
    "count_dependence_reduction": "probe.analysis._analysis:count_dependence_reduction",
    "scaling": "probe.analysis._analysis:scaling",
    "summarize": "probe.analysis._analysis:summarize",
    "summarize_models": "probe.analysis._analysis:summarize_models",
    "wilson_interval": "probe.analysis._analysis:wilson_interval",
    "load_qa": "probe.data._qa:load_qa",
    "evaluate": "probe.evaluation._evaluate:evaluate",
    "load_format": "probe.evaluation._prompts:load_format",
    "adaptive_retrieval": "probe.evaluation._rag:adaptive_retrieval",
    "oracle_passages": "probe.evaluation._rag:oracle_passages",
    "question_entity_names": "probe.evaluation._rag:question_entity_names",
    "recall_at_k": "probe.evaluation._rag:recall_at_k",
    "retrieval_precision": "probe.evaluation._rag:retrieval_precision",
    "retrieve_passages": "probe.evaluation._rag:retrieve_passages",
    "contains_answer": "probe.evaluation._scoring:contains_answer",
    "exact_match": "probe.evaluation._scoring:exact_match",
    "normalize_answer": "probe.evaluation._scoring:normalize_answer",
    "get_generator": "probe.generation._backends:get_generator",
    "GenerationError": "probe.generation._base:GenerationError",
    "Generator": "probe.generation._base:Generator",
    "start_vllm_server": "probe.generation._server:start_vllm_server",
    "probe_statements": "probe.link._probing:probe_statements",
    "load_rules": "probe.link._rules:load_rules",
    "Rule": "probe.link._rules:Rule",
    "CountScorer": "probe.link._search:CountScorer",
    "generate_statements": "probe.link._search:generate_statements",
    "SearchConfig": "probe.link._search:SearchConfig",
    "counterfactual": "probe.pipeline._counterfactual:counterfactual",
    "load_config": "probe.pipeline._config:load_config",
    "merge": "probe.pipeline._run:merge",
    "run": "probe.pipeline._run:run",
    "model_parameters": "probe.pipeline._params:model_parameters",
    "parameter_count": "probe.pipeline._params:parameter_count",
    "load_run": "probe.report._load:load_run",
    "Run": "probe.report._load:Run",
    "compare_runs": "probe.report._report:compare_runs",
    "write_report": "probe.report._report:write_report",
    "train_model": "probe.world._train:train_model",
    "TrainConfig": "probe.world._train:TrainConfig",
    "generate_world": "probe.world._world:generate_world",
    "WorldConfig": "probe.world._world:WorldConfig",
}

__getattr__ = lazy_exports(__name__, _LAZY)
__all__ = [*_LAZY]
