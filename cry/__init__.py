"""The infant cry monitor and classifier: a small core and three wings over it.

core (this folder): settings (params), files and errors, audio decoding, the corpus's names,
    the reason model's window_to_image, YAMNet, pinned downloads, the decision rule, streams
    and the live path; assemble builds the live path from the model files.
reason/: the CNN-LSTM and everything that trains, calibrates and evaluates it.
detect/: is it a cry at all: YAMNet's view -> a head -> p(crying); its training and reports.
monitor/: the microphone and the outputs (terminal, CSV, history, web page, MQTT).
Wings import the core, never each other; only cry.assemble (and the scripts) see more than one.
"""

__version__ = "0.18.0"  # the device's software version in Home Assistant (with the git commit, when known)
