# Builds the libFuzzer targets outside CMake (CMake only globs tests/unit and
# tests/conformance). Invoked by tests/fuzz/run.sh:
#   make -f tests/fuzz/fuzz.mk -j2 OUT=build/fuzz
# Library sources are compiled once with -fsanitize=fuzzer-no-link (coverage
# instrumentation without libFuzzer's main) + ASan + UBSan into one archive;
# each tests/fuzz/fuzz_*.c links against it, pulling only the objects it uses.
OUT    ?= build/fuzz
CC     := clang
SHARED ?= /work/shared
SRCDIR := $(abspath .)
# Extra flags for the targets only, e.g. -DFUZZ_WORKAROUND_EMPTY_FLUSH
FUZZ_CFLAGS ?=

SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
CFLAGS  := -std=c11 -g -O1 -Wall -Wextra -Werror -Wno-unused-parameter -D_GNU_SOURCE -pthread \
           -Isrc -DSP_SHARED_DIR=\"$(SHARED)\" -DSP_SOURCE_DIR=\"$(SRCDIR)\" \
           -DSP_BUILD_DIR=\"$(abspath $(OUT))\" $(SAN) -MMD -MP
PKGS    := jansson libpcre2-8 libutf8proc libmicrohttpd libxxhash libpng libjpeg libwebp \
           libwebpdemux libgif libcurl
LIBS    := $(shell pkg-config --libs $(PKGS)) -lm -pthread

AVX2    := -mavx2 -mfma -mf16c
AVX512  := $(AVX2) -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512bf16 -mavx512vnni

# cuda: only src/cuda/stub.c (the .cu files are nvcc's; fuzz builds have no GPU backend)
LAYERS  := base compute formats tokenizer chat cuda model media vision engine server
# One archive per layer, so a half-edited file in one layer only blocks the
# targets that need that layer (run.sh builds with make -k).
layer_objs = $(patsubst src/%.c,$(OUT)/obj/%.o,$(wildcard src/$(1)/*.c))
ARCHIVES   := $(foreach l,$(LAYERS),$(OUT)/libsp_$(l).a)
TARGETS    := $(patsubst tests/fuzz/fuzz_%.c,$(OUT)/fuzz_%,$(wildcard tests/fuzz/fuzz_*.c))

# Layers each target links, highest first (DESIGN.md section 2: arrows down).
LOW := formats compute base
TOK := tokenizer $(LOW)
NEEDS_safetensors    := $(LOW)
NEEDS_safetensors_sharded := $(LOW)
NEEDS_gguf           := model cuda $(LOW)
NEEDS_json_config    := model cuda $(LOW)
NEEDS_tokenizer_load := $(TOK)
NEEDS_gguf_vocab     := $(TOK)
NEEDS_tokenize       := $(TOK)
NEEDS_detok          := $(TOK)
NEEDS_template       := chat $(TOK)
NEEDS_toolcall       := chat $(TOK)
NEEDS_schema         := chat $(LOW)
NEEDS_request        := server engine vision media model cuda chat $(TOK)
NEEDS_image          := media $(LOW)

all: $(TARGETS)

$(OUT)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fsanitize=fuzzer-no-link $(ISA) -c $< -o $@

$(OUT)/obj/%_avx2.o: ISA = $(AVX2)
$(OUT)/obj/%_avx512.o: ISA = $(AVX512)

define layer_rule
$(OUT)/libsp_$(1).a: $(call layer_objs,$(1))
	@rm -f $$@
	ar rcs $$@ $$^
endef
$(foreach l,$(LAYERS),$(eval $(call layer_rule,$(l))))

.SECONDEXPANSION:
$(OUT)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_common.h $(OUT)/fuzz_cflags.stamp $$(foreach l,$$(NEEDS_$$*),$(OUT)/libsp_$$(l).a)
	$(CC) $(CFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< $(foreach l,$(NEEDS_$*),$(OUT)/libsp_$(l).a) $(LIBS) -o $@

# tests/unit/test_fuzz_regressions.c linked against the same sanitized
# archives: replays corpus + regressions under ASan/UBSan/LSan in seconds
# (run.sh replay) without a full `make asan` build.
ALL_ARCHIVES := $(foreach l,server engine vision media model cuda chat tokenizer formats compute base,\
                $(OUT)/libsp_$(l).a)
$(OUT)/replay: tests/unit/test_fuzz_regressions.c $(wildcard tests/fuzz/fuzz_*.c) tests/fuzz/fuzz_common.h $(ALL_ARCHIVES)
	$(CC) $(CFLAGS) -Itests/unit $< $(ALL_ARCHIVES) $(LIBS) -o $@

# Relinks the targets when FUZZ_CFLAGS changes.
$(OUT)/fuzz_cflags.stamp: FORCE
	@mkdir -p $(OUT)
	@echo '$(FUZZ_CFLAGS)' | cmp -s - $@ || echo '$(FUZZ_CFLAGS)' > $@

-include $(wildcard $(OUT)/obj/*/*.d) $(TARGETS:=.d)

.PHONY: all FORCE
