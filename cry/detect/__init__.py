"""The detect wing: is it a cry at all? YAMNet's view of a window -> a head -> p(crying) and what was
heard; its training, its sounds, and the clip reports that measure it through the live path."""
