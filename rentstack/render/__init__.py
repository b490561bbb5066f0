"""Rendering: a planned Deployment and the texts of its artifacts (no I/O here)."""

from rentstack.render.deployment import Deployment, build_deployment
from rentstack.render.templates import (
    CUSTOM_PROFILE,
    TEMPLATES_DIR,
    compose_profile,
    image_for,
    render_compose_env,
    render_root_compose,
    render_vllm_yaml,
)

__all__ = ["CUSTOM_PROFILE", "TEMPLATES_DIR", "Deployment", "build_deployment", "compose_profile", "image_for",
           "render_compose_env", "render_root_compose", "render_vllm_yaml"]
