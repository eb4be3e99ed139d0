"""Evaluation, retrieval augmentation, long-tail generation, analysis and the `ltprobe` command."""

from entity_linking._lazy import lazy_exports

# name -> "module:attribute", imported on first use (one line each; keep sorted by module).
_LAZY = {
    "adaptive_retrieval": "probe._rag:adaptive_retrieval",
    "oracle_passages": "probe._rag:oracle_passages",
    "question_entity_names": "probe._rag:question_entity_names",
    "recall_at_k": "probe._rag:recall_at_k",
    "retrieval_precision": "probe._rag:retrieval_precision",
    "retrieve_passages": "probe._rag:retrieve_passages",
    "count_dependence_reduction": "probe._analysis:count_dependence_reduction",
    "scaling": "probe._analysis:scaling",
    "summarize": "probe._analysis:summarize",
    "summarize_models": "probe._analysis:summarize_models",
    "wilson_interval": "probe._analysis:wilson_interval",
    "load_qa": "probe._data:load_qa",
    "evaluate": "probe._evaluate:evaluate",
    "Generator": "probe._generation:Generator",
    "GenerationError": "probe._generation:GenerationError",
    "get_generator": "probe._generation:get_generator",
    "start_vllm_server": "probe._generation:start_vllm_server",
    "model_parameters": "probe._params:model_parameters",
    "parameter_count": "probe._params:parameter_count",
    "load_format": "probe._prompts:load_format",
    "contains_answer": "probe._scoring:contains_answer",
    "exact_match": "probe._scoring:exact_match",
    "normalize_answer": "probe._scoring:normalize_answer",
    "compare_runs": "probe._report:compare_runs",
    "load_run": "probe._load:load_run",
    "Run": "probe._load:Run",
    "CountScorer": "probe._linkgen:CountScorer",
    "SearchConfig": "probe._linkgen:SearchConfig",
    "generate_statements": "probe._linkgen:generate_statements",
    "probe_statements": "probe._probing:probe_statements",
    "write_report": "probe._report:write_report",
    "Rule": "probe._rules:Rule",
    "load_rules": "probe._rules:load_rules",
    "TrainConfig": "probe._train:TrainConfig",
    "train_model": "probe._train:train_model",
    "WorldConfig": "probe._world:WorldConfig",
    "generate_world": "probe._world:generate_world",
}

__getattr__ = lazy_exports(__name__, _LAZY)
__all__ = [*_LAZY]
