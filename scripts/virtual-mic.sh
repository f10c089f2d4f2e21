#!/bin/sh
# Virtual microphone for tests (no sound card needed): a PulseAudio null sink whose
# monitor is the default capture device, so PortAudio's "default"/"pulse" inputs hear
# whatever is played into the sink. Recipe and measurements: docs/virtual-microphone.md.
#   virtual-mic.sh install          # apt packages (root)
#   virtual-mic.sh start            # start the daemon (returns when ready)
#   virtual-mic.sh feed FILE.wav    # play FILE into the mic, real time, blocks
#   virtual-mic.sh stop             # stop the daemon this directory belongs to, remove its files
# Clients (pactl, paplay, the program under test) need
#   PULSE_SERVER=unix:$VMIC_DIR/pulse.sock
set -eu
VMIC_DIR=${VMIC_DIR:-/tmp/virtual-mic}
VMIC_RATE=${VMIC_RATE:-16000}
export PULSE_SERVER="unix:$VMIC_DIR/pulse.sock"

case "${1:-}" in
install)
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libportaudio2 pulseaudio pulseaudio-utils libasound2-plugins
    ;;
start)
    mkdir -p "$VMIC_DIR"; chmod 700 "$VMIC_DIR"
    # norewinds=1: 50 ms blocks instead of 2 s ones, so a new capture stream hears at once.
    cat > "$VMIC_DIR/virtual-mic.pa" <<PA
load-module module-native-protocol-unix socket=$VMIC_DIR/pulse.sock auth-anonymous=1
load-module module-null-sink sink_name=mic_feed rate=$VMIC_RATE channels=1 format=s16le norewinds=1 sink_properties=device.description=Virtual-microphone-feed
set-default-sink mic_feed
set-default-source mic_feed.monitor
PA
    # PULSE_RUNTIME_PATH/PULSE_STATE_PATH keep the pid file and cookie out of $HOME.
    PULSE_RUNTIME_PATH="$VMIC_DIR" PULSE_STATE_PATH="$VMIC_DIR" \
        pulseaudio --daemonize=yes -n -F "$VMIC_DIR/virtual-mic.pa" \
            --exit-idle-time=-1 --log-target="file:$VMIC_DIR/pulse.log"
    pactl info >/dev/null   # fails (non-zero) if the daemon is not reachable
    ;;
feed)
    exec paplay -d mic_feed "$2"
    ;;
stop)
    if [ -f "$VMIC_DIR/pid" ]; then
        kill "$(cat "$VMIC_DIR/pid")" 2>/dev/null || true
        i=0; while [ -f "$VMIC_DIR/pid" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
    fi
    rm -rf "$VMIC_DIR"
    ;;
*)
    echo "usage: $0 install|start|feed FILE.wav|stop" >&2; exit 2 ;;
esac
