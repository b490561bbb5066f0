"""Specs: tiers (stacks/*.yaml), the model catalog (stacks/models.yaml), vLLM's argument list.

Everything here validates input and returns typed values; nothing runs.
"""

from rentstack.config.catalog import CatalogModel, Source, load_catalog, parse_source, resolve_model
from rentstack.config.tiers import STACKS_DIR, Gpu, Tier, custom_tier, list_tiers, load_tier, parse_size_gib

__all__ = ["STACKS_DIR", "CatalogModel", "Gpu", "Source", "Tier", "custom_tier", "list_tiers",
           "load_catalog", "load_tier", "parse_size_gib", "parse_source", "resolve_model"]
