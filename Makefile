# plugin-host: `make run` starts a host with the example plugins, `make test` runs the tests.
# Every target installs the Debian packages it needs when they are missing.

SWIFT ?= swift
PORT ?= 8080
DATA ?= data
APT := $(shell [ "$$(id -u)" = 0 ] && echo apt-get || echo sudo apt-get)
BUILD_PACKAGES := libsqlite3-dev libpq-dev pkg-config
# The tests and benchmarks start a throwaway PostgreSQL server of their own; the conformance tests run
# the Python remote plugin (standard library only); the manifest schema is checked with Python's
# jsonschema against the host's validator.
POSTGRES_PACKAGES := postgresql
TEST_PACKAGES := $(POSTGRES_PACKAGES) python3 python3-jsonschema python3-yaml
BENCH_PACKAGES := wrk $(POSTGRES_PACKAGES)
WITH_POSTGRES := Tests/support/throwaway-postgres.sh run

# Installs the Debian packages named in $(1) that are not installed yet.
define ensure_packages
	@missing=""; for package in $(1); do \
		dpkg-query -W -f='$${Status}' $$package 2>/dev/null | grep -q "ok installed" || missing="$$missing $$package"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(APT) update -qq && DEBIAN_FRONTEND=noninteractive $(APT) install -y -qq $$missing; \
	fi
endef

FUZZ_SECONDS ?= 60
FUZZ_TARGETS := elf manifest version-range envelope worker-frame bundle

.PHONY: deps build run test bench fuzz clean

deps:
	$(call ensure_packages,$(BUILD_PACKAGES))

## build: release host (.build/release/plugin-host, and plugin-host-worker beside it) and example plugins
## (Plugins/.build/release/*.so)
build: deps
	$(SWIFT) build -c release --product plugin-host
	$(SWIFT) build -c release --product plugin-host-worker
	cd Plugins && $(SWIFT) build -c release

## run: build, then serve on an embedded store in $(DATA) with manifests/ installed
run: build
	@cat docs/walkthrough.txt | sed "s/{PORT}/$(PORT)/g"
	.build/release/plugin-host serve --data $(DATA) --port $(PORT) --manifests manifests

## test: build the plugin packages the tests load, then the Swift Testing suite against SQLite and a
## throwaway PostgreSQL (or the server PLUGIN_HOST_TEST_DATABASE_URL names)
test: deps
	$(call ensure_packages,$(TEST_PACKAGES))
	cd Plugins && $(SWIFT) build
	cd Tests/Fixtures && $(SWIFT) build
	$(SWIFT) build --build-tests
	THROWAWAY_POSTGRES_FSYNC=off $(WITH_POSTGRES) $(SWIFT) test --skip-build

## bench: dispatch overhead, HTTP throughput, storage, registry, remote plugins and worker processes, each against
## a baseline in the same run
bench: deps
	$(call ensure_packages,$(BENCH_PACKAGES))
	$(SWIFT) build -c release --product plugin-host-bench
	$(SWIFT) build -c release --product plugin-host-worker
	cd Plugins && $(SWIFT) build -c release
	$(WITH_POSTGRES) .build/release/plugin-host-bench --plugins Plugins/.build/release
	@echo; echo "The remote plugin benchmark again, with Swift concurrency on the NIO event loops (opt-in):"
	PLUGIN_HOST_NIO_EXECUTOR=1 .build/release/plugin-host-bench --plugins Plugins/.build/release --only-remote

## fuzz: each parser of outside bytes (ELF reader, manifest validator, version ranges, remote envelope and
## SDK token, worker frames, plugin bundles) under libFuzzer and AddressSanitizer for FUZZ_SECONDS (60) each; a crash fails the run and
## is kept in .build-fuzz/crashes/ (CI runs 30 s of each). swiftc drops the fuzzer's coverage when given
## -sanitize=fuzzer and -sanitize=address as two flags (as SwiftPM does), so it is asked for explicitly; a run
## without coverage fails.
fuzz: deps
	$(SWIFT) build --product plugin-host-fuzz --sanitize fuzzer --sanitize address --scratch-path .build-fuzz -Xswiftc -DPLUGIN_HOST_FUZZING \
		-Xswiftc -sanitize-coverage=edge,inline-8bit-counters,pc-table
	cd Plugins && $(SWIFT) build
	@for target in $(FUZZ_TARGETS); do \
		echo "fuzzing $$target for $(FUZZ_SECONDS) s"; \
		Tests/Fuzz/run.sh $$target $(FUZZ_SECONDS) > .build-fuzz/$$target.log 2>&1 || { tail -40 .build-fuzz/$$target.log; exit 1; }; \
		if grep -q "Is the code instrumented for coverage" .build-fuzz/$$target.log; then \
			echo "fuzzing $$target found no coverage: the Swift code is not instrumented"; exit 1; fi; \
		grep -E "^stat::(number_of_executed_units|average_exec_per_sec)" .build-fuzz/$$target.log; \
	done

clean:
	rm -rf .build .build-fuzz Plugins/.build Tests/Fixtures/.build PluginSDK/.build
