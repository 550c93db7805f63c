# Newcomer commands:  make run   (build + serve a model)   make test   (build + all tests)
BUILD    ?= build/release
JOBS     ?= $(shell nproc)
MODEL    ?= ../shared/models/stories260K.gguf
ARGS     ?=
CMAKE_FLAGS ?=

.PHONY: all build run test unit bench format format-check clean

all: build

build:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/spindle serve --model $(MODEL) $(ARGS)

unit: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

test: format-check unit

bench: build
	$(BUILD)/spindle bench --model $(MODEL) $(ARGS)

FORMAT_FILES = $(shell git ls-files '*.c' '*.h' 2>/dev/null)

format:
	clang-format -i $(FORMAT_FILES)

format-check:
	@clang-format --dry-run --Werror $(FORMAT_FILES) && echo "clang-format: ok"

clean:
	rm -rf build
