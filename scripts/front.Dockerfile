# The front door: Debian's nginx with its njs module, on the debootstrap'ed base (no registry).
# nginx checks the bearer key (scripts/front/auth.js, reading it from the environment) and
# forwards only the allowlisted routes to vLLM; the rendered config is mounted at run time.
#   BASE=rentstack/debian-base:bookworm  (debootstrap'ed; default)
ARG BASE=rentstack/debian-base:bookworm
FROM ${BASE}
# bookworm: nginx 1.22.1 and libnginx-mod-http-js (njs) 0.7.9; curl to probe the front from
# inside its container when debugging (the debootstrap base has it, debian:bookworm-slim on a
# remote host does not). The default site is removed so nothing but the rendered config
# listens; logs go to stdout/stderr.
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx libnginx-mod-http-js curl \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /etc/nginx/sites-enabled/* /etc/nginx/conf.d/* \
 && ln -sf /dev/stdout /var/log/nginx/access.log && ln -sf /dev/stderr /var/log/nginx/error.log
STOPSIGNAL SIGQUIT
ENTRYPOINT ["nginx", "-g", "daemon off;", "-c", "/etc/rentstack/front/nginx.conf"]
