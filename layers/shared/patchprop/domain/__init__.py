"""The domain: models, references, findings, the gate, the cascade, alerts. No I/O."""
