"""The front door on a native host (no Docker, e.g. AutoDL): the distribution's nginx, run by
the native runner's supervisor beside vLLM, which listens on loopback only.

Pure command builders (the fact's parser is rentstack.remote.facts.parse_front); the steps run them. nginx comes from the host's own
apt (nginx is in every Debian and Ubuntu); its njs module where the distribution packages it
(Debian 12: libnginx-mod-http-js 0.7.9), else the key is compared by an nginx map kept in a
0600 file (rentstack.render.front.key_map_text).
"""

from __future__ import annotations

JS_MODULE = "/usr/lib/nginx/modules/ngx_http_js_module.so"
"""Where Debian and Ubuntu put the njs module (/usr/share/nginx/modules links to it)."""

FRONT_FACT_COMMAND = (
    "v=$(nginx -v 2>&1 | sed -n 's|^nginx version: nginx/||p'); echo \"nginx=$v\"; "
    f"if [ -e {JS_MODULE} ]; then echo njs=yes; else echo njs=no; fi; "
    "if apt-cache show libnginx-mod-http-js >/dev/null 2>&1; then echo njs_packaged=yes; "
    "else echo njs_packaged=no; fi"
)
"""What the host has for the front: nginx's version, the njs module, and whether apt offers it
(parsed by rentstack.remote.facts.parse_front)."""


def install_nginx() -> str:
    """Install nginx (and njs when packaged) from the host's apt, without starting the
    distribution's own nginx service (policy-rc.d): rentstack runs its own instance."""
    return "\n".join([
        "set -e",
        "command -v apt-get >/dev/null || { echo 'no apt-get on this host: install nginx yourself'; exit 2; }",
        "own_policy=0",
        "if [ ! -e /usr/sbin/policy-rc.d ]; then own_policy=1; printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d; "
        "chmod 755 /usr/sbin/policy-rc.d; fi",
        "trap '[ $own_policy = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT",
        "export DEBIAN_FRONTEND=noninteractive",
        "apt-get update -qq >/dev/null",
        "pkgs=nginx",
        "if apt-cache show libnginx-mod-http-js >/dev/null 2>&1; then pkgs=\"$pkgs libnginx-mod-http-js\"; fi",
        "apt-get install -y -qq --no-install-recommends $pkgs >/dev/null",
        "nginx -v",
    ])


def nginx_argv(conf: str) -> tuple[str, ...]:
    """The front's command line: the rendered config only, no secret (nginx reads those from
    its environment or the 0600 key.map.conf)."""
    return ("nginx", "-g", "daemon off;", "-c", conf)
