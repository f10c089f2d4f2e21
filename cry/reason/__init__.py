"""The reason wing: the specified CNN-LSTM on mel-spectrogram images, and everything that trains,
calibrates, exports and evaluates it (why a baby cries, as far as held-out babies show it can be told)."""
