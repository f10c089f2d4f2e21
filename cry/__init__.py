"""Shared code of the infant cry classifier: settings, audio, features, data, model I/O."""
