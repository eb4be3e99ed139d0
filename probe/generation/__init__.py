"""Text generation backends (vLLM in-process, an OpenAI-compatible server, transformers), one module
each, behind one `get_generator` that imports a backend only when it builds one (`BACKENDS`:
name -> "module:Class"), and what the hardware supports."""

from entity_linking.lazy import lazy_exports

# name -> "module:attribute", imported on first use (one line each; sorted by module).
_LAZY = {
    "BACKENDS": "probe.generation._backends:BACKENDS",
    "get_generator": "probe.generation._backends:get_generator",
    "resolve_backend": "probe.generation._backends:resolve_backend",
    "vllm_available": "probe.generation._backends:vllm_available",
    "candidate_tokens": "probe.generation._base:candidate_tokens",
    "GenerationError": "probe.generation._base:GenerationError",
    "Generator": "probe.generation._base:Generator",
    "available_cores": "probe.generation._hardware:available_cores",
    "cpu_flags": "probe.generation._hardware:cpu_flags",
    "native_bf16": "probe.generation._hardware:native_bf16",
    "training_device": "probe.generation._hardware:training_device",
    "OpenAIGenerator": "probe.generation._server:OpenAIGenerator",
    "start_vllm_server": "probe.generation._server:start_vllm_server",
    "TransformersGenerator": "probe.generation._transformers:TransformersGenerator",
    "VLLMGenerator": "probe.generation._vllm:VLLMGenerator",
}

__getattr__ = lazy_exports(__name__, _LAZY)
__all__ = [*_LAZY]
