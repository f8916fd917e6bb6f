#!/usr/bin/env bash
# Regenerate the demo's recorded conversation (needs espeak-ng and sox).
# Each line of conversation.txt is: <start second> <file> <words spoken>.
# The user's lines are spoken by espeak-ng (voice en-us+m3), trimmed to the
# speech and resampled to 16 kHz mono 16-bit. The demo places each file at its
# start second on one microphone track; line 3 starts while the model is
# still answering line 2, so the user talks over the model.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
while read -r start file words; do
    [ -z "$start" ] && continue
    case "$start" in \#*) continue ;; esac
    espeak-ng -v en-us+m3 -s 160 -w "$tmp/raw.wav" "$words"
    sox "$tmp/raw.wav" -r 16000 -c 1 -b 16 "$file" \
        silence 1 0.005 0.5% reverse silence 1 0.005 0.5% reverse
    echo "$file: $(soxi -D "$file") s at ${start} s: $words"
done <conversation.txt
