# The README's two commands: `make dev` and `make test`. `make bench` runs the benchmark.
BUILD      ?= build
TEST_BUILD ?= build-test
FUZZ_BUILD ?= build-fuzz
JOBS       ?= $(shell nproc)
FUZZ_SECONDS ?= 20

.PHONY: all deps build dev test unit fuzz bench clean format

all: build

deps:
	@./scripts/install-deps

# Release-ish build: build/gyrus
build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGY_TESTS=OFF >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

dev: build
	./$(BUILD)/gyrus dev

# Test build: ASan+UBSan, unit (cmocka) and integration (pytest) tests through ctest,
# then a short run of every fuzz target when clang is present.
test: deps
	@cmake -S . -B $(TEST_BUILD) -DCMAKE_BUILD_TYPE=Debug -DGY_SANITIZE=ON >/dev/null
	@cmake --build $(TEST_BUILD) -j $(JOBS)
	cd $(TEST_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure
	@$(MAKE) --no-print-directory fuzz

unit: deps
	@cmake -S . -B $(TEST_BUILD) -DCMAKE_BUILD_TYPE=Debug -DGY_SANITIZE=ON >/dev/null
	@cmake --build $(TEST_BUILD) -j $(JOBS)
	cd $(TEST_BUILD) && ctest --output-on-failure -L unit

fuzz:
	@if command -v clang >/dev/null 2>&1; then \
	  CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DGY_SANITIZE=ON -DGY_FUZZ=ON -DGY_TESTS=OFF >/dev/null && \
	  cmake --build $(FUZZ_BUILD) -j $(JOBS) && \
	  ./scripts/run-fuzzers $(FUZZ_BUILD) $(FUZZ_SECONDS); \
	else echo "fuzz: clang not found, skipping fuzz targets"; fi

bench: build
	/usr/bin/python3 bench/run.py --gyrus ./$(BUILD)/gyrus
	/usr/bin/python3 bench/retries.py --gyrus ./$(BUILD)/gyrus
	/usr/bin/python3 bench/h2.py --gyrus ./$(BUILD)/gyrus
	/usr/bin/python3 bench/control_bench.py --gyrus ./$(BUILD)/gyrus
	/usr/bin/python3 bench/tls.py --gyrus ./$(BUILD)/gyrus
	/usr/bin/python3 bench/mtls.py --gyrus ./$(BUILD)/gyrus

clean:
	rm -rf $(BUILD) $(TEST_BUILD) $(FUZZ_BUILD)
