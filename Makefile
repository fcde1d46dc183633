# The two commands a fresh machine needs: `make run` and `make test`.
GO ?= go

.PHONY: run test vet fmt-check build bench

# Migrate, seed the Say No With Grace workshop (prints a generated admin
# password the first time), then serve on :8080, in dev mode: missing
# secrets get stand-ins that say so in the log.
run: build
	GRACE_ENV=dev ./bin/grace seed
	GRACE_ENV=dev ./bin/grace serve

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

# Benchmarks compare Grace's hot paths with bare baselines in the same run.
bench:
	$(GO) run ./bench
