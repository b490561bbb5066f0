"""secrets.env: the one file that carries a tier's API key (mode 0600, never in YAML or argv).

Both executors write it (.rentstack/<tier>/ here, DATA/.rentstack/deploy/<tier>/ on a host)
and read the key back from it, so its format lives here and nowhere else.
"""

from __future__ import annotations

import secrets

from rentstack.safe import env_line, read_env_text

SECRETS_FILE = "secrets.env"
KEY_VAR = "VLLM_API_KEY"
METRICS_VAR = "RENTSTACK_METRICS_TOKEN"
"""A second secret that opens only /metrics at the front door (for a scraper that should not
hold the API key)."""


PART_SECRET_FILES = {"key.env": (KEY_VAR,), "metrics.env": (METRICS_VAR,)}
"""What each part beside the server gets (compose-around.yaml.j2): the chat UI the API key, the
scraper and the idle watchdog only the metrics token. Neither sees HF_TOKEN or the other."""


def part_secrets_texts(tier_name: str, key: str, metrics_token: str) -> dict[str, str]:
    """File name -> text of the parts' narrow secret files (each to be written 0600)."""
    values = {KEY_VAR: key, METRICS_VAR: metrics_token}
    return {name: f"# {', '.join(names)} of tier {tier_name} for the parts beside the server; keep this file 0600\n"
                  + "".join(env_line(n, values[n], secret=True) + "\n" for n in names)
            for name, names in PART_SECRET_FILES.items()}


def new_api_key() -> str:
    """A fresh key: 32 random bytes, URL-safe, with a prefix that says where it came from."""
    return "rs-" + secrets.token_urlsafe(32)


def new_metrics_token() -> str:
    return "rsm-" + secrets.token_urlsafe(32)


def parse_secret(text: str, var: str) -> str | None:
    """The value of ``var`` in a secrets.env's text, or None."""
    return read_env_text(text).get(var) or None


def parse_api_key(text: str) -> str | None:
    """The key in a secrets.env's text, or None."""
    return parse_secret(text, KEY_VAR)


def secrets_env_text(tier_name: str, key: str, extra: tuple[tuple[str, str], ...] = ()) -> str:
    """The secrets.env a tier's server and front read VLLM_API_KEY (and RENTSTACK_METRICS_TOKEN,
    HF_TOKEN, ...) from (to be written 0600);
    every line through safe.env_line, so no value can add a line of its own."""
    lines = [env_line(name, value, secret=True) for name, value in ((KEY_VAR, key), *extra)]
    return f"# API key (and other secrets) of tier {tier_name}; keep this file 0600\n" + "\n".join(lines) + "\n"
