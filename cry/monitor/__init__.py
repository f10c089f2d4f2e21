"""The monitor wing: a microphone, the outputs a parent reads (terminal, CSV, history, the page,
MQTT), all fed by the live path of the core and never holding it up."""
