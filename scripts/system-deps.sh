#!/bin/sh
# Debian packages the project needs: PortAudio for sounddevice, espeak-ng and sox to generate the
# detector's not-crying sounds, and for the tests a PulseAudio virtual microphone (see
# tests/conftest.py), a broker (mosquitto) and a browser (chromium). Installs only what is missing.
#   system-deps.sh run    # PortAudio, espeak-ng, sox
#   system-deps.sh test   # those + the virtual microphone, mosquitto, chromium
set -eu
need=""
{ ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null; } | grep -q 'libportaudio\.so\.2' || need="$need libportaudio2"
command -v espeak-ng >/dev/null 2>&1 || need="$need espeak-ng"  # generated speech (train_model.py's detector)
command -v sox >/dev/null 2>&1 || need="$need sox"              # generated music and tones
if [ "${1:-run}" = test ]; then
    command -v pulseaudio >/dev/null 2>&1 || need="$need pulseaudio"
    command -v paplay >/dev/null 2>&1 || need="$need pulseaudio-utils"
    [ -e /usr/lib/x86_64-linux-gnu/alsa-lib/libasound_module_pcm_pulse.so ] ||
        [ -e /usr/lib/aarch64-linux-gnu/alsa-lib/libasound_module_pcm_pulse.so ] || need="$need libasound2-plugins"
    [ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null 2>&1 || need="$need mosquitto"  # MQTT tests' broker
    command -v chromium >/dev/null 2>&1 || need="$need chromium"  # the web page's browser test (Playwright)
fi
[ -z "$need" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
    echo "note: please install:$need (not a Debian system; continuing without)" >&2; exit 0
fi
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
echo "installing:$need"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $need >/dev/null
