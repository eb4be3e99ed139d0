"""Text generation backends (vLLM in-process, an OpenAI-compatible server, transformers) behind one
`get_generator`, and what the hardware supports."""

from entity_linking.lazy import lazy_exports

# name -> "module:attribute", imported on first use (one line each; sorted by module).
_LAZY = {
    "candidate_tokens": "probe.generation._generation:candidate_tokens",
    "GenerationError": "probe.generation._generation:GenerationError",
    "Generator": "probe.generation._generation:Generator",
    "get_generator": "probe.generation._generation:get_generator",
    "resolve_backend": "probe.generation._generation:resolve_backend",
    "start_vllm_server": "probe.generation._generation:start_vllm_server",
    "available_cores": "probe.generation._hardware:available_cores",
    "native_bf16": "probe.generation._hardware:native_bf16",
    "training_device": "probe.generation._hardware:training_device",
}

__getattr__ = lazy_exports(__name__, _LAZY)
__all__ = [*_LAZY]
