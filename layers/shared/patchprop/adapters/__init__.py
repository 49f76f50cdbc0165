"""Adapters: the only modules that talk to AWS, registries or Slack."""
