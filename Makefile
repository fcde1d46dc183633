# The two commands a fresh machine needs: `make run` and `make test`.
GO ?= go

.PHONY: run test vet fmt-check build bench

# Migrate, seed the Say No With Grace workshop (prints a generated admin
# password the first time), then serve on :8080, in dev mode unless
# GRACE_ENV says otherwise: emails are printed to the log, not sent, and
# payments are off unless STRIPE_SECRET_KEY is set (stripe-mock works).
GRACE_ENV ?= dev
run: build
	GRACE_ENV=$(GRACE_ENV) ./bin/grace seed
	GRACE_ENV=$(GRACE_ENV) ./bin/grace serve

build:
	$(GO) build -o bin/grace ./cmd/grace

# Everything CI checks: formatting, vet, and every test against the local
# PostgreSQL (and stripe-mock, started by the tests themselves).
test: fmt-check vet
	$(GO) test -race -count=1 -timeout 15m ./...

vet:
	$(GO) vet ./...

fmt-check:
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# Benchmarks compare Grace's hot paths with bare baselines in the same run
# (HTTP ones with wrk against `grace serve`; see bench/README.md). One
# scenario: make bench BENCH_RUN=free-access-claim; more: BENCH_FLAGS=...
bench:
	$(GO) run ./bench $(if $(BENCH_RUN),-run '$(BENCH_RUN)') $(BENCH_FLAGS)
