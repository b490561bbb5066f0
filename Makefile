# rentstack — the front door. `make help` lists the targets.
# On a fresh machine: `make up` serves the CPU tier; `make test` runs the tests.

TIER     ?= cpu
MODEL    ?=
PRESET   ?=
PORT     ?= 8000
SET      ?=
AUTO_FIX ?= 0
BASE     ?=
ARGS     ?=
LOG      ?= -
HOST     ?=
HOSTS    ?=
CONCURRENCY ?= 1,2,4,8
VLLM     ?=
PROFILES ?=
IDLE_STOP ?= off
IDLE_ACTION ?= stop

VENV   := .venv
PY     := $(VENV)/bin/python
RS     := $(VENV)/bin/rentstack
PYTEST := $(VENV)/bin/pytest

# A variable as one single-quoted shell word. $(value X) is X as written: neither make
# (`$(shell ...)` in an environment variable) nor the shell (`$(id)`, spaces, `;`) runs or
# splits anything in it. ARGS alone is shell text on purpose: extra flags, as typed.
q = '$(subst ','\'',$(value $(1)))'
qw = '$(subst ','\'',$(1))'

# Optional flags, only when the variable is set.
tier_flags = --tier $(call q,TIER) $(if $(value PRESET),--preset $(call q,PRESET)) \
             $(if $(value MODEL),--model $(call q,MODEL)) --port $(call q,PORT) \
             $(foreach s,$(value SET),--set $(call qw,$(s))) $(if $(value VLLM),--vllm-version $(call q,VLLM))

.PHONY: help venv host image render up down status logs smoke top doctor plan compose.yaml \
        provision fab-status fab-down fab-bench \
        test test-unit test-integration bench bench-up bench-planner bench-download bench-provision bench-serve bench-replicas clean

help: ## list the targets and variables
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_.-]+:.*## / {printf "  make %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo ""
	@echo "  variables: TIER="$(call q,TIER)" MODEL="$(call q,MODEL)" PRESET="$(call q,PRESET)" PORT="$(call q,PORT)" SET='key=value ...' AUTO_FIX="$(call q,AUTO_FIX)" BASE="$(call q,BASE)" VLLM="$(call q,VLLM)
	@echo "  tiers:     $$(ls stacks | sed -n 's/\.yaml$$//p' | grep -v '^models$$' | tr '\n' ' ')"

venv: ## create .venv with rentstack and the test tools (reinstalls when pyproject.toml changes)
	@bash scripts/ensure-venv.sh $(VENV)

host: ## install/start the Docker engine and Compose v2 if missing (root)
	@bash scripts/prepare-host.sh

image: venv host ## build the vLLM CPU and front-door (nginx) images from package mirrors (BASE=python:3.11-slim to use a registry base)
	@$(RS) image $(if $(value BASE),--base $(call q,BASE))

render: venv ## render .rentstack/TIER/ (vLLM config, compose values, API key)
	@$(RS) render $(tier_flags) $(ARGS)

up: venv host ## start TIER (default cpu) and wait until healthy; PROFILES="webui monitoring", IDLE_STOP=30m; AUTO_FIX=N retries
	@$(RS) up $(tier_flags) --auto-fix $(call q,AUTO_FIX) $(if $(value BASE),--base $(call q,BASE)) \
	  --profiles $(call q,PROFILES) --idle-stop $(call q,IDLE_STOP) --idle-action $(call q,IDLE_ACTION) $(ARGS)

down: venv ## stop TIER
	@$(RS) down --tier $(call q,TIER)

status: venv ## show TIER's container state and health
	@$(RS) status --tier $(call q,TIER)

logs: venv ## print TIER's server log
	@$(RS) logs --tier $(call q,TIER)

smoke: venv ## send a real chat request with the key; print the reply and tokens/s
	@$(RS) smoke --tier $(call q,TIER)

top: venv ## live view of TIER's server: KV cache, requests, tokens/s, TTFT/ITL, GPUs (Ctrl-C quits)
	@$(RS) top --tier $(call q,TIER) $(ARGS)

doctor: venv ## explain a vLLM log: make doctor LOG=file (default: TIER's server log)
	@if [ $(call q,LOG) = "-" ]; then $(RS) logs --tier $(call q,TIER) | $(RS) doctor -; else $(RS) doctor $(call q,LOG); fi

plan: venv ## memory plan for TIER and MODEL (auto-fit)
	@$(RS) plan --tier $(call q,TIER) $(if $(value MODEL),--model $(call q,MODEL)) $(if $(value VLLM),--vllm-version $(call q,VLLM)) --fit

provision: venv ## provision a rented host over SSH: make provision HOST='ssh -p PORT root@HOST' [TIER= MODEL=]
	@test -n $(call q,HOST) || { echo "make provision: set HOST, e.g. HOST='ssh -p 12345 root@region-1.autodl.com'" >&2; exit 2; }
	@$(VENV)/bin/fab provision --host $(call q,HOST) --tier $(call q,TIER) $(if $(value MODEL),--model $(call q,MODEL)) $(ARGS)

fab-status: venv ## the server on a rented host: make fab-status HOST=...
	@$(VENV)/bin/fab status --host $(call q,HOST) --tier $(call q,TIER)

fab-bench: venv ## load-test a rented host's server through an SSH tunnel: make fab-bench HOST=... [CONCURRENCY=]
	@$(VENV)/bin/fab bench --host $(call q,HOST) --tier $(call q,TIER) --concurrency $(call q,CONCURRENCY)

fab-down: venv ## stop the server on a rented host: make fab-down HOST=...
	@$(VENV)/bin/fab down --host $(call q,HOST) --tier $(call q,TIER)

compose.yaml: venv ## regenerate compose.yaml from stacks/ and templates/
	@$(RS) render --compose

test: venv ## all tests (integration tests need Docker; CI=true makes them mandatory)
	@bash scripts/run-tests.sh $(PYTEST) $(ARGS)

test-unit: venv ## unit tests only (nothing needed)
	@$(PYTEST) tests/unit $(ARGS)

test-integration: venv host ## integration tests only (real Docker, real vLLM)
	@$(PYTEST) tests/integration $(ARGS)

bench: bench-up bench-planner ## all benchmarks

bench-up: venv host ## cold/warm `make up` vs direct vLLM start, smoke tokens/s (median of 3)
	@$(PY) scripts/bench_up.py $(ARGS)

bench-planner: venv ## planner vs vLLM's logged figures on the dev records, by segment; band.json up to date
	@$(PY) scripts/bench_planner.py $(ARGS)
	@$(PY) scripts/fit_band.py --check

bench-download: venv ## fetch_weights.py vs `modelscope download` against a local hub server
	@$(PY) scripts/bench_download.py $(ARGS)

bench-serve: venv host ## load-test TIER's served endpoint over CONCURRENCY (table, JSON, PNG plot)
	@$(RS) bench --tier $(call q,TIER) --concurrency $(call q,CONCURRENCY) $(ARGS)

bench-replicas: venv host ## one replica vs two behind vLLM's router: make bench-replicas HOSTS=h1,h2 (after fab provision --replicas)
	@test -n "$(value HOSTS)" || { echo "make bench-replicas: set HOSTS=h1,h2 (provisioned with fab provision --replicas)" >&2; exit 2; }
	@$(PY) scripts/bench_replicas.py --hosts $(call q,HOSTS) --tier $(call q,TIER) --port $(call q,PORT) $(ARGS)

bench-provision: venv ## first provision vs re-run on a test SSH host (see scripts/bench_provision.py --help)
	@$(PY) scripts/bench_provision.py $(ARGS)

clean: ## remove rendered state (.rentstack/); keeps models, wheelhouse and images
	rm -rf .rentstack
