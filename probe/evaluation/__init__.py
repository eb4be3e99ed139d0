"""Evaluating a model on QA pairs: prompts, scoring, batched evaluation with resume, and retrieval
augmentation (BM25 passages, oracle passages, adaptive retrieval, retrieval quality)."""

from entity_linking.lazy import lazy_exports

# name -> "module:attribute", imported on first use (one line each; sorted by module).
_LAZY = {
    "check_prompt_formats": "probe.evaluation._evaluate:check_prompt_formats",
    "evaluate": "probe.evaluation._evaluate:evaluate",
    "evaluate_settings": "probe.evaluation._evaluate:evaluate_settings",
    "parse_shard": "probe.evaluation._evaluate:parse_shard",
    "build_prompt": "probe.evaluation._prompts:build_prompt",
    "load_format": "probe.evaluation._prompts:load_format",
    "prompt_formats": "probe.evaluation._prompts:prompt_formats",
    "relation_question": "probe.evaluation._prompts:relation_question",
    "Shot": "probe.evaluation._prompts:Shot",
    "adaptive_retrieval": "probe.evaluation._rag:adaptive_retrieval",
    "adaptive_retrieval_by_relation": "probe.evaluation._rag:adaptive_retrieval_by_relation",
    "evidence_passages": "probe.evaluation._rag:evidence_passages",
    "oracle_passages": "probe.evaluation._rag:oracle_passages",
    "question_entity_names": "probe.evaluation._rag:question_entity_names",
    "recall_at_k": "probe.evaluation._rag:recall_at_k",
    "RECALL_KS": "probe.evaluation._rag:RECALL_KS",
    "retrieval_precision": "probe.evaluation._rag:retrieval_precision",
    "retrieval_quality": "probe.evaluation._rag:retrieval_quality",
    "retrieve_settings": "probe.evaluation._rag:retrieve_settings",
    "retrieve_passages": "probe.evaluation._rag:retrieve_passages",
    "Prediction": "probe.evaluation._records:Prediction",
    "contains_answer": "probe.evaluation._scoring:contains_answer",
    "exact_match": "probe.evaluation._scoring:exact_match",
    "normalize_answer": "probe.evaluation._scoring:normalize_answer",
    "RETRIEVAL_SETTINGS": "probe.evaluation._settings:RETRIEVAL_SETTINGS",
    "setting_order": "probe.evaluation._settings:setting_order",
    "SETTINGS": "probe.evaluation._settings:SETTINGS",
}

__getattr__ = lazy_exports(__name__, _LAZY)
__all__ = [*_LAZY]
