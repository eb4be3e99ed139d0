"""The job: the config, `run` with its config-aware stages and lock, sharded runs and `merge`, the
counterfactual retraining, provenance and model parameter counts; `ltprobe eval` / `ltprobe rag` as
`evaluate_models` / `rag`; probe's benchmarks (`bench_eval`, `bench_generate`, `bench_train`; `bench_pipeline`,
link -> index -> count at scale)."""

from entity_linking.lazy import lazy_exports

# name -> "module:attribute", imported on first use (one line each; sorted by module).
_LAZY = {
    "bench_eval": "probe.pipeline._bench:bench_eval",
    "bench_generate": "probe.pipeline._bench:bench_generate",
    "bench_model": "probe.pipeline._bench:bench_model",
    "bench_train": "probe.pipeline._bench:bench_train",
    "bench_pipeline": "probe.pipeline._bench_pipeline:bench_pipeline",
    "PILE_DOCS": "probe.pipeline._bench_pipeline:PILE_DOCS",
    "check_config": "probe.pipeline._config:check_config",
    "JobConfig": "probe.pipeline._config:JobConfig",
    "load_config": "probe.pipeline._config:load_config",
    "counterfactual": "probe.pipeline._counterfactual:counterfactual",
    "EvalOptions": "probe.pipeline._eval:EvalOptions",
    "EvalResult": "probe.pipeline._eval:EvalResult",
    "evaluate_models": "probe.pipeline._eval:evaluate_models",
    "rag": "probe.pipeline._eval:rag",
    "model_parameters": "probe.pipeline._params:model_parameters",
    "parameter_count": "probe.pipeline._params:parameter_count",
    "parse_params": "probe.pipeline._params:parse_params",
    "environment": "probe.pipeline._provenance:environment",
    "merge": "probe.pipeline._run:merge",
    "run": "probe.pipeline._run:run",
}

__getattr__ = lazy_exports(__name__, _LAZY)
__all__ = [*_LAZY]
