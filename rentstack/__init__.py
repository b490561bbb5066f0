"""rentstack: vLLM's OpenAI-compatible server on rented GPUs, with settings that fit the card.

Data flow (one module boundary per arrow):
  spec (stacks/*.yaml, catalog, flags) -> rentstack.config  (validated models)
  -> rentstack.plan    (pure GPU memory math, auto-fit)
  -> rentstack.render  (vLLM YAML, compose, env files; pure)
  -> rentstack.local / rentstack.remote  (executors: docker compose here, Fabric over SSH)
  -> rentstack.verify / rentstack.doctor (health, smoke request, log diagnosis)
"""

__version__ = "0.1.0"
