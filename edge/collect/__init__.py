"""Frames kept for retraining: the policy (pure), the store (quota, durable writes) and the collector."""
