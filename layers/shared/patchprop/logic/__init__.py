"""The plain logic of each step; adapters come in as arguments."""
