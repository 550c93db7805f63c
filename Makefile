# Newcomer commands (both install the Debian packages they need first):
#   make run    build and serve a model (MODEL=path, ARGS="--port 8001 ...")
#   make test   build and run every suite: format check, unit + conformance +
#               CLI tests, end-to-end tests with the openai client, the
#               same under AddressSanitizer+UBSan and ThreadSanitizer, and
#               every libFuzzer target for 15 s
BUILD    ?= build/release
JOBS     ?= $(shell nproc)
SHARED   ?= $(abspath ../shared)
MODEL    ?= $(SHARED)/models/stories260K.gguf
ARGS     ?=
CMAKE_FLAGS ?=
TOKENIZERS = $(abspath build/tokenizers)

.PHONY: all deps build run test test-cuda unit e2e load asan tsan fuzz fuzz-ci tokenizers bench format format-check clean

all: build

# The Debian packages every target needs (scripts/install-deps.sh: a quick
# check when all are present; apt-get as root, or through sudo).
deps:
	@bash scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DSP_SHARED_DIR=$(SHARED) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/spindle serve --model $(MODEL) $(ARGS)

tokenizers: deps
	@bash scripts/fetch-tokenizers.sh $(TOKENIZERS)

unit: build tokenizers
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

# The whole suite on the HF fixture model (transformers' reference ids), then
# the API and concurrency tests again on the real stories260K GGUF.
e2e: build tokenizers
	bash tests/e2e/run.sh $(BUILD)/spindle $(SHARED) $(BUILD)
	SPINDLE_MODEL=$(SHARED)/models/stories260K.gguf bash tests/e2e/run.sh $(BUILD)/spindle \
	  $(SHARED) $(BUILD) tests/e2e/api.test.mjs tests/e2e/concurrency.test.mjs

# Bounded load test: 2,000 mixed requests from 32 clients, 10% cancelled.
load: build
	bash tests/load/run.sh $(BUILD)/spindle $(SHARED) $(BUILD)

# Sanitizer builds live in their own build directories; LeakSanitizer checks
# the server at exit after the load test. Under ASan the conformance runs at
# the scalar kernel level are left out: the release ctest runs them, and
# under ASan the kernel unit tests still run the scalar kernels at every
# level in-process (those conformance runs took minutes there).
SAN_ENV = ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
asan: tokenizers
	@cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DSP_SANITIZE=address -DSP_SHARED_DIR=$(SHARED) >/dev/null
	@cmake --build build/asan -j $(JOBS)
	$(SAN_ENV) ctest --test-dir build/asan --output-on-failure -j $(JOBS) -E '@scalar$$'
	$(SAN_ENV) bash tests/e2e/run.sh build/asan/spindle $(SHARED) build/asan
	$(SAN_ENV) bash tests/load/run.sh build/asan/spindle $(SHARED) build/asan

tsan: tokenizers
	@cmake -S . -B build/tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSP_SANITIZE=thread -DSP_SHARED_DIR=$(SHARED) >/dev/null
	@cmake --build build/tsan -j $(JOBS)
	TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
	  ctest --test-dir build/tsan --output-on-failure -L concurrency
	TSAN_OPTIONS="halt_on_error=1" bash tests/e2e/run.sh build/tsan/spindle $(SHARED) build/tsan \
	  tests/e2e/concurrency.test.mjs tests/e2e/faults.test.mjs
	TSAN_OPTIONS="halt_on_error=1" LOAD_REQUESTS=400 bash tests/load/run.sh build/tsan/spindle \
	  $(SHARED) build/tsan

# libFuzzer targets (clang): `make fuzz` runs each for FUZZ_SECONDS.
# `make fuzz-ci` (part of `make test`) runs every target for
# FUZZ_CI_SECONDS, one target per core at a time, in its own build directory
# (objects kept between runs) and fails on any crash, leak, timeout or
# broken invariant: about 1 min of building plus 11 x 15 s / cores.
FUZZ_SECONDS ?= 300
FUZZ_CI_SECONDS ?= 15
fuzz: tokenizers
	bash tests/fuzz/run.sh $(FUZZ_SECONDS)

fuzz-ci: tokenizers
	FUZZ_OUT=build/fuzz-ci FUZZ_JOBS=$(JOBS) FUZZ_PARALLEL=$(JOBS) \
	  bash tests/fuzz/run.sh $(FUZZ_CI_SECONDS)

test: format-check unit e2e load asan tsan fuzz-ci

# The GPU suite, on a machine with an NVIDIA GPU (the CUDA backend is built
# whenever nvcc is found): the conformance, GGUF, engine and backend tests
# on --device cuda (ctest label cuda; each reports "skipped" and why where
# no GPU is usable), then the e2e suite against `spindle serve --device cuda`.
test-cuda: build tokenizers
	ctest --test-dir $(BUILD) --output-on-failure -L cuda
	SPINDLE_ARGS="--device cuda" bash tests/e2e/run.sh $(BUILD)/spindle $(SHARED) $(BUILD)

bench: build
	$(BUILD)/spindle bench --model $(MODEL) $(ARGS)

FORMAT_FILES = $(wildcard $(shell git ls-files -co --exclude-standard '*.c' '*.h' 2>/dev/null))

format: deps
	clang-format -i $(FORMAT_FILES)

format-check: deps
	@clang-format --dry-run --Werror $(FORMAT_FILES) && echo "clang-format: ok"

clean:
	rm -rf build
