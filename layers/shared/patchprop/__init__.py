"""patchprop: keep images built on hardened bases patched, hands-off."""
