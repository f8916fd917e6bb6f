# shellcheck shell=bash
# Semantic end of turn (sourced by .ci/setup.sh, which provides `say` and
# $PIP): onnxruntime runs Smart Turn v3.2, whose weights (8.7 MB, BSD-2-Clause)
# ship inside the pipecat-ai wheel. --no-deps: trio_live reads the ONNX file
# and never imports pipecat, whose declared dependencies it does not need.
# Fast when everything is installed.
PIPECAT_VERSION=1.14.0
if ! .venv/bin/python -c "import onnxruntime" >/dev/null 2>&1; then
    say "pip install onnxruntime (the turn extra)"
    $PIP install -q --disable-pip-version-check "onnxruntime>=1.17"
fi
if [ "$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("pipecat-ai"))' 2>/dev/null)" = "$PIPECAT_VERSION" ]; then
    say "pipecat-ai $PIPECAT_VERSION (Smart Turn v3.2 weights) is installed"
else
    say "installing pipecat-ai $PIPECAT_VERSION --no-deps (for smart-turn-v3.2-cpu.onnx, BSD-2-Clause)"
    $PIP install -q --disable-pip-version-check --no-deps "pipecat-ai==$PIPECAT_VERSION"
fi
.venv/bin/python -c "
from trio_live.voice import smart_turn_model_path
path = smart_turn_model_path()
assert path, 'smart-turn-v3.2-cpu.onnx was not found in the pipecat-ai wheel'
print('    smart turn weights:', path)
"
unset PIPECAT_VERSION
