# Two commands on a fresh machine: `make demo` runs the pipeline once, `make test` passes the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
MANIFEST := dbt_project/target/manifest.json
DBT_FILES := $(shell find dbt_project/models dbt_project/macros dbt_project/tests -type f 2>/dev/null) \
             dbt_project/dbt_project.yml dbt_project/profiles.yml

.PHONY: install manifest demo dev backfill retention report export docs bi-role webhooks test test-integration lint bench bench-scale bench-sandbox bench-webhooks bench-collection bench-incremental api bench-api bench-webhook-latency prod stop clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is needed, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	@touch $(STAMP)

manifest: $(MANIFEST)

$(MANIFEST): $(STAMP) $(DBT_FILES)
	$(BIN)/dbt parse --quiet --project-dir dbt_project --profiles-dir dbt_project

demo: $(MANIFEST)  ## materialize every asset once on the embedded default and print the totals
	$(BIN)/python -m cli.demo

dev: $(MANIFEST)  ## the Dagster UI on the same setup, http://127.0.0.1:3000
	$(BIN)/python -m cli.dev

backfill: $(MANIFEST)  ## collect and recompute UTC days START..END again: make backfill START=2026-01-01 END=2026-01-07
	$(BIN)/python -m cli.backfill --start $(START) --end $(END)

retention: $(STAMP)  ## purge detailed events of closed, reconciled cycles older than 13 months (DRY_RUN=1 to preview)
	$(BIN)/python -m cli.retention $(if $(DRY_RUN),--dry-run)

report: $(STAMP)  ## the usage report as static HTML, agency + one page per client (REPORT_DIR=dir AS_OF=2026-03-16T00:00Z)
	$(BIN)/python -m cli.report $(if $(REPORT_DIR),--out $(REPORT_DIR)) $(if $(AS_OF),--as-of $(AS_OF))

export: $(STAMP)  ## each client's cycle statement (CSV + JSON) and FOCUS 1.2 file: make export CYCLE=2026-03 (or a cycle id; EXPORT_DIR=dir)
	@test -n "$(CYCLE)" || { echo "CYCLE is required: make export CYCLE=YYYY-MM (or a cycle id)" >&2; exit 2; }
	$(BIN)/python -m cli.export --cycle $(CYCLE) $(if $(EXPORT_DIR),--out $(EXPORT_DIR))

docs: $(STAMP)  ## dbt docs offline: open dbt_project/target/docs/static_index.html (SERVE=1: dbt docs serve, 127.0.0.1:8080)
	$(BIN)/python -m cli.docs $(if $(SERVE),--serve)

bi-role: $(STAMP)  ## the read-only BI login, SELECT on marts and reporting only: BILLING_USAGE_BI_PASSWORD=... make bi-role
	$(BIN)/python -m cli.bi_role

webhooks: $(STAMP)  ## the webhook receiver on 127.0.0.1:8000 (BILLING_USAGE_WEBHOOKS_PORT)
	$(BIN)/python -m cli.webhooks

api: $(STAMP)  ## the reporting API on 127.0.0.1:8001 (BILLING_USAGE_API_PORT); tokens: python -m cli.api_tokens
	$(BIN)/python -m cli.api

test: $(MANIFEST)  ## every test; BILLING_USAGE_TEST_DATABASE_URL picks a server, else the embedded one
	$(BIN)/pytest -q

test-integration: $(MANIFEST)
	$(BIN)/pytest -q -m integration

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(MANIFEST)  ## every performance figure in one table: collection at 1M records, incremental builds at 100k and 10M events, a 1M-event day, webhook latency
	$(BIN)/python -m benchmarks.suite

bench-scale: $(MANIFEST)  ## incremental builds on 100k against 10M events, a 1M-event day, and the plans of an incremental build
	$(BIN)/python -m benchmarks.incremental_scale

bench-sandbox: $(STAMP)  ## generation rate at a million-record scale
	$(BIN)/python -m sandbox --clients 50 --agents-per-client 10 --days 10 --calls-per-agent-per-day 20 bench

bench-webhooks: $(STAMP)  ## signed deliveries per second through the receiver, and rows landed
	$(BIN)/python -m benchmarks.webhook_throughput

bench-collection: $(STAMP)  ## 1M records collected three ways (collectors, bare requests+COPY, the sandbox alone), then nothing new
	$(BIN)/python -m benchmarks.collection

bench-incremental: $(MANIFEST)  ## fct_usage_events: full refresh against incremental builds
	$(BIN)/python -m benchmarks.incremental_build

bench-api: $(MANIFEST)  ## reporting API latency (p50/p95) on a generated warehouse of 10 M events
	$(BIN)/python -m benchmarks.api

bench-webhook-latency: $(MANIFEST)  ## webhook -> fct_daily_usage latency (p50/p95) at 100 signed deliveries/s; DURATION=60 shortens it
	$(BIN)/python -m benchmarks.webhook_latency $(if $(DURATION),--seconds $(DURATION))

prod: $(MANIFEST)  ## the production layout on one machine: code server, daemon, webserver on DAGSTER_POSTGRES_URL (docs/production.md)
	$(BIN)/python -m cli.production

stop:  ## stop the background sandbox and the embedded PostgreSQL
	-$(BIN)/python -m cli.local_env stop

clean: stop
	rm -rf .local dbt_project/target dbt_project/logs
