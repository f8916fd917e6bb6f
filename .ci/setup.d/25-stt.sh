# shellcheck shell=bash
# Speech to text (sourced by .ci/setup.sh, which provides `say` and $PIP):
# moonshine-cpp ships Moonshine base-en and its runtime (wheels for Linux
# x86_64 and macOS arm64 only), pocketsphinx ships its US English model (every
# platform), numpy converts the audio. The test clips are committed, so no
# espeak-ng or sox is needed here. Fast when everything is installed.
stt_missing=()
for mod in numpy:numpy pocketsphinx:pocketsphinx; do
    .venv/bin/python -c "import ${mod%%:*}" >/dev/null 2>&1 || stt_missing+=("${mod#*:}")
done
case "$(uname -s)-$(uname -m)" in
    Linux-x86_64 | Darwin-arm64)
        .venv/bin/python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('moonshine_cpp') is None)" \
            >/dev/null 2>&1 || stt_missing+=("moonshine-cpp==0.1.4")
        ;;
    *) say "moonshine-cpp has no wheel for $(uname -s)-$(uname -m): PocketSphinx only" ;;
esac
if [ ${#stt_missing[@]} -gt 0 ]; then
    say "pip install ${stt_missing[*]}"
    $PIP install -q --disable-pip-version-check "${stt_missing[@]}"
else
    say "speech-to-text back ends already installed"
fi
unset stt_missing mod
