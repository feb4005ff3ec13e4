"""The env file: its format, the rules its keys follow, validation and a new one from the
example."""
