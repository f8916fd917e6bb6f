#!/usr/bin/env bash
# Regenerate the small 16 kHz mono WAV files the voice tests use.
# Needs espeak-ng and sox. Every speech file is trimmed to its first and last
# audible sample and then padded with known silence, so the tests know where
# speech starts and ends:
#   hello.wav          0.50 s silence, "Hello, what is the weather like today?", 0.80 s silence
#   two_parts.wav      0.40 s silence, "Turn on the lights.", 1.20 s silence,
#                      "Please play some music.", 0.60 s silence
#   interrupt.wav      0.30 s silence, "Stop, wait a moment.", 0.50 s silence
#   silence.wav        2.00 s of faint white noise (no speech)
#   click.wav          0.50 s silence, a 20 ms click, 0.98 s silence (no speech)
#   cough.wav          0.60 s silence, a 120 ms noise burst, 0.60 s silence (no speech)
# The exact speech positions are written to positions.txt (name start end).
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# -R: sox's random numbers are the same on every run (repeatable noise).
SOX="sox -R"

speech() {  # speech NAME TEXT -> $tmp/NAME.wav, trimmed, 16 kHz mono 16-bit
    espeak-ng -v en-us -s 165 -w "$tmp/$1.raw.wav" "$2"
    $SOX "$tmp/$1.raw.wav" -r 16000 -c 1 -b 16 "$tmp/$1.wav" \
        silence 1 0.005 0.5% reverse silence 1 0.005 0.5% reverse
}
seconds() { soxi -D "$1"; }
silence() {  # silence FILE SECONDS
    $SOX -n -r 16000 -c 1 -b 16 "$1" trim 0 "$2"
}

: >positions.txt
speech hello "Hello, what is the weather like today?"
$SOX "$tmp/hello.wav" hello.wav pad 0.5 0.8
echo "hello.wav 0.5 $(echo "0.5 + $(seconds "$tmp/hello.wav")" | bc -l)" >>positions.txt

speech lights "Turn on the lights."
speech music "Please play some music."
silence "$tmp/gap.wav" 1.2
$SOX "$tmp/lights.wav" "$tmp/gap.wav" "$tmp/music.wav" "$tmp/two.wav"
$SOX "$tmp/two.wav" two_parts.wav pad 0.4 0.6
lights=$(seconds "$tmp/lights.wav")
music=$(seconds "$tmp/music.wav")
echo "two_parts.wav 0.4 $(echo "0.4 + $lights" | bc -l)" >>positions.txt
echo "two_parts.wav $(echo "0.4 + $lights + 1.2" | bc -l) $(echo "0.4 + $lights + 1.2 + $music" | bc -l)" >>positions.txt

speech stop "Stop, wait a moment."
$SOX "$tmp/stop.wav" interrupt.wav pad 0.3 0.5
echo "interrupt.wav 0.3 $(echo "0.3 + $(seconds "$tmp/stop.wav")" | bc -l)" >>positions.txt

$SOX -n -r 16000 -c 1 -b 16 silence.wav synth 2.0 whitenoise vol 0.003

$SOX -n -r 16000 -c 1 -b 16 "$tmp/click.wav" synth 0.02 square 1000 vol 0.8
$SOX "$tmp/click.wav" click.wav pad 0.5 0.98

$SOX -n -r 16000 -c 1 -b 16 "$tmp/burst.wav" synth 0.12 brownnoise vol 0.7
$SOX "$tmp/burst.wav" cough.wav pad 0.6 0.6
echo "wrote hello, two_parts, interrupt, silence, click and cough WAV files and positions.txt"
