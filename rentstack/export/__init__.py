"""Exports of a planned deployment for other deployment systems (Kubernetes via Helm)."""

from rentstack.export.helm import helm_values, unknown_keys

__all__ = ["helm_values", "unknown_keys"]
