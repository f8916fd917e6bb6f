#!/usr/bin/env bash
# Make the speech-to-text test clips (16 kHz mono 16-bit WAV) with espeak-ng
# and sox. The clips are committed; run this only to change them.
#   bash tests/data/make_stt_data.sh
set -euo pipefail
cd "$(dirname "$0")"

say() {  # say NAME "TEXT": speak TEXT with 0.3 s of silence before, 0.5 s after
    local tmp
    tmp=$(mktemp --suffix=.wav)
    espeak-ng -v en-us -s 165 -w "$tmp" "$2"
    sox "$tmp" -r 16000 -c 1 -b 16 "stt_$1.wav" pad 0.3 0.5
    rm -f "$tmp"
    echo "stt_$1.wav: $(soxi -D "stt_$1.wav") s"
}

say weather "What is the weather like in Paris today?"
say stop "Please stop talking and tell me a story about a green dragon."
# Longer than the 7 s that one recognition may take: cut into segments.
say long "My sister lives in London, and every morning she rides her bicycle to the office. \
On Sundays she cooks dinner for the whole family."
