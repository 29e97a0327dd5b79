# msmix build. `make` builds build/libmsmix.a and build/msmix; `make test` runs the doctest suite.
# Options: CUDA=0|1 (default: 1 when nvcc is found), CUDNN=0|1 (default: 1 when cudnn.h is found), SAN=1
# (ASan + UBSan), NATIVE=1 (-march=native), BUILD=dir (build folder, default build), DEPS_PREFIX=dir (the
# Debian packages unpacked under dir instead of installed: for a machine without a package registry, see
# bench/gpucheck.sh).
BUILD ?= build
# Build in parallel on every core unless the caller chose -j.
ifeq ($(filter -j%,$(MAKEFLAGS)),)
  MAKEFLAGS += -j$(shell nproc)
endif
CXX ?= g++
CUDA_HOME ?= /usr/local/cuda
NVCC ?= $(shell command -v nvcc 2>/dev/null || { test -x $(CUDA_HOME)/bin/nvcc && echo $(CUDA_HOME)/bin/nvcc; })
ifeq ($(origin CUDA),undefined)
  CUDA := $(if $(NVCC),1,0)
endif
# cuDNN, for MSMIX_CUDA_LSTM=cudnn (ops/cuda/lstm_cudnn.cu): CUDNN=0|1, by default 1 in a CUDA build that finds
# cudnn.h in CUDNN_INC. CUDNN_HOME: where cuDNN is (default: the toolkit's folders; a pip wheel's nvidia/cudnn
# works too, see bench/gpucheck.sh); CUDNN_EXTRA_LDFLAGS, say, a folder holding the libcudnn.so link.
CUDNN_HOME ?= $(CUDA_HOME)
CUDNN_INC ?= $(CUDNN_HOME)/include
CUDNN_LIBDIR ?= $(if $(wildcard $(CUDNN_HOME)/lib64),$(CUDNN_HOME)/lib64,$(CUDNN_HOME)/lib)
ifeq ($(origin CUDNN),undefined)
  CUDNN := $(if $(and $(filter 1,$(CUDA)),$(wildcard $(CUDNN_INC)/cudnn.h)),1,0)
endif

# OpenBLAS built for OpenMP: BLAS calls and our kernels share one thread pool, instead of two pools
# spinning against each other on a small machine.
BLAS_INC := /usr/include/x86_64-linux-gnu/openblas-openmp
BLAS_LIB := /usr/lib/x86_64-linux-gnu/openblas-openmp
ifneq ($(DEPS_PREFIX),)
  BLAS_INC := $(DEPS_PREFIX)$(BLAS_INC)
  BLAS_LIB := $(DEPS_PREFIX)$(BLAS_LIB)
  PREFIX_FLAGS := -isystem $(DEPS_PREFIX)/usr/include
  PREFIX_LDFLAGS := -L$(DEPS_PREFIX)/usr/lib/x86_64-linux-gnu -Wl,-rpath,$(DEPS_PREFIX)/usr/lib/x86_64-linux-gnu
endif
VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
# The commit (with -dirty for uncommitted changes) that run configs and `msmix info` record. Only the two
# objects that print it see it, and they rebuild when it changes (the stamp file is rewritten only then).
GIT_REV := $(shell git describe --always --dirty --abbrev=7 2>/dev/null || echo unknown)
REV_STAMP := $(BUILD)/.git-rev
$(shell mkdir -p $(BUILD) && [ "$$(cat $(REV_STAMP) 2>/dev/null)" = "$(GIT_REV)" ] || echo "$(GIT_REV)" > $(REV_STAMP))

OPT ?= -O3
# -Wno-stringop-overflow: GCC 12 reports a false positive inside fmt 9's headers at -O3.
CXXFLAGS := -std=c++17 $(OPT) -g1 -fopenmp -fno-math-errno -Wall -Wextra -Wno-stringop-overflow -I. -I$(BLAS_INC) -MMD -MP \
            -DMSMIX_VERSION='"$(VERSION)"' $(PREFIX_FLAGS)
LDFLAGS := -fopenmp -L$(BLAS_LIB) -Wl,-rpath,$(BLAS_LIB) $(PREFIX_LDFLAGS)
LDLIBS := -lopenblas -lfmt -lpthread
ifeq ($(SAN),1)
  CXXFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDFLAGS += -fsanitize=address,undefined
endif
ifeq ($(NATIVE),1)
  CXXFLAGS += -march=native
endif
CXXFLAGS += -DMSMIX_BUILD_FLAGS='"CUDA=$(CUDA) CUDNN=$(CUDNN) SAN=$(SAN) NATIVE=$(NATIVE) $(OPT)"'

LIB_SRCS := $(wildcard engine/*.cpp ops/*.cpp ops/cpu/*.cpp models/*.cpp data/*.cpp msmix/*.cpp)
LIB_SRCS := $(filter-out msmix/main.cpp,$(LIB_SRCS))
# Where the CUDA libraries are, and which runtime is linked; CUDA_EXTRA_INC / CUDA_EXTRA_LDFLAGS add the
# folders of a toolkit laid out differently (gpucheck finds cuBLAS there and passes them).
CUDA_LIBDIR ?= $(CUDA_HOME)/lib64
CUDART ?= cudart_static
# GPU architectures compiled for (CI checks both; gpucheck builds only the lent GPU's, e.g. CUDA_ARCHS=90).
CUDA_ARCHS ?= 80 90
ifeq ($(CUDA),1)
  CU_SRCS := $(wildcard engine/cuda/*.cu ops/cuda/*.cu)
  # One stream, the per-thread default one: unlike the legacy default stream it can be captured into a CUDA
  # graph (engine/cuda_runtime.h); the engine queues all its work from one thread.
  NVCCFLAGS := -std=c++17 -O3 --default-stream per-thread -I. -I$(BLAS_INC) $(PREFIX_FLAGS) $(CUDA_EXTRA_INC) -Xcompiler -fopenmp,-Wall,-Wextra -MMD -MP \
               $(foreach a,$(CUDA_ARCHS),-gencode arch=compute_$(a),code=sm_$(a)) $(NVCC_EXTRA)
  LDFLAGS += -L$(CUDA_LIBDIR) -Wl,-rpath,$(CUDA_LIBDIR) $(CUDA_EXTRA_LDFLAGS)
  LDLIBS += -lcublas -l$(CUDART) -ldl -lrt
  ifeq ($(CUDNN),1)
    NVCCFLAGS += -DMSMIX_CUDNN=1 -I$(CUDNN_INC)
    LDFLAGS += -L$(CUDNN_LIBDIR) -Wl,-rpath,$(CUDNN_LIBDIR) $(CUDNN_EXTRA_LDFLAGS)
    LDLIBS += -lcudnn
  endif
else
  # The stand-ins for engine/cuda/*.cu and ops/cuda/*.cu: the only sources a CPU-only build adds.
  LIB_SRCS += $(wildcard engine/nocuda/*.cpp ops/nocuda/*.cpp)
endif
TEST_SRCS := $(wildcard tests/*.cpp tests/*/*.cpp)
BENCH_SRCS := $(wildcard bench/*.cpp)

OBJ := $(BUILD)/obj
LIB_OBJS := $(LIB_SRCS:%.cpp=$(OBJ)/%.o) $(CU_SRCS:%.cu=$(OBJ)/%.cu.o)
TEST_OBJS := $(TEST_SRCS:%.cpp=$(OBJ)/%.o)
LIB := $(BUILD)/libmsmix.a
DEPS_STAMP := $(BUILD)/.deps-ok

.PHONY: all test clean deps bench bench-compare bench-models info gpucheck profile
all: $(BUILD)/msmix

# Install Debian packages when a needed header is missing (see scripts/deps.sh).
$(DEPS_STAMP): scripts/deps.sh
	@$(if $(DEPS_PREFIX),true,bash scripts/deps.sh --check-or-install)
	@mkdir -p $(BUILD) && touch $@
deps:
	@bash scripts/deps.sh --install

$(OBJ)/%.o: %.cpp | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c $< -o $@
$(OBJ)/%.cu.o: %.cu | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

$(OBJ)/msmix/info.o $(OBJ)/msmix/trainer_resume.o: $(REV_STAMP)
$(OBJ)/msmix/info.o $(OBJ)/msmix/trainer_resume.o: CXXFLAGS += -DMSMIX_GIT_REV='"$(GIT_REV)"'

# Kernels built for AVX2 + FMA, called only after a run-time CPU check (ops/cpu/fast_math.cpp).
$(OBJ)/ops/cpu/fast_math_avx2.o: CXXFLAGS += -mavx2 -mfma

$(LIB): $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^
$(BUILD)/msmix: $(OBJ)/msmix/main.o $(LIB)
	$(CXX) $^ -o $@ $(LDFLAGS) $(LDLIBS)
$(BUILD)/test_msmix: $(TEST_OBJS) $(LIB)
	$(CXX) $^ -o $@ $(LDFLAGS) $(LDLIBS)
$(BUILD)/bench_ops: $(OBJ)/bench/bench_ops.o $(LIB)
	$(CXX) $^ -o $@ $(LDFLAGS) $(LDLIBS)
$(BUILD)/bench_cuda_ops: $(OBJ)/bench/bench_cuda_ops.o $(LIB)
	$(CXX) $^ -o $@ $(LDFLAGS) $(LDLIBS)

# Under SAN=1 the caching allocator is bypassed so ASan sees every use-after-free. Tests are not timed, so
# OpenMP threads sleep instead of spinning between regions (spinning made them 10x slower on a busy 2-core box).
test: $(BUILD)/test_msmix $(BUILD)/msmix
	cd tests && OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-passive} $(if $(filter 1,$(SAN)),MSMIX_ALLOC=system ASAN_OPTIONS=detect_leaks=1) ../$(BUILD)/test_msmix $(TEST_ARGS)

# The op benchmarks, then a training-step benchmark per backbone at MMSA's MOSI shapes and batch sizes (msmix
# alone; `make bench-models` sets each beside its PyTorch twin).
bench: $(BUILD)/bench_ops $(BUILD)/msmix
	$(BUILD)/bench_ops
	for m in lf_dnn tfn lmf; do $(BUILD)/msmix bench --model $$m --data synthetic:mosi --device cpu --steps 5 --warmup 1; done
	$(BUILD)/msmix bench --model mult --data synthetic:mosi --device cpu --steps 2 --warmup 1
bench-compare: $(BUILD)/bench_ops
	python3 bench/compare.py $(BUILD)/bench_ops

# Whole training steps per backbone beside the PyTorch twins (bench/compare_models.py; THREADS=1,2 by default).
THREADS ?= 1,2
bench-models: $(BUILD)/msmix
	python3 bench/compare_models.py --msmix $(BUILD)/msmix --threads $(THREADS) --markdown

info: $(BUILD)/msmix
	$(BUILD)/msmix info

# On a GPU machine: a fresh CUDA build, the whole suite, the op benchmarks beside PyTorch's, and a report
# (bench/gpucheck.sh; under 8 minutes). `make profile`: a CUDA build with -lineinfo for Nsight Compute's
# source view, in $(BUILD)-profile.
gpucheck:  # without our MAKEFLAGS: the script's own make picks its -j
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL bash bench/gpucheck.sh
profile:
	$(MAKE) BUILD=$(BUILD)-profile CUDA=1 NVCC_EXTRA=-lineinfo $(BUILD)-profile/msmix $(BUILD)-profile/bench_cuda_ops

clean:
	rm -rf $(BUILD)

-include $(LIB_OBJS:.o=.d) $(TEST_OBJS:.o=.d) $(OBJ)/msmix/main.d $(BENCH_SRCS:%.cpp=$(OBJ)/%.d)

# ---- libFuzzer targets (clang++). `make fuzz` fuzzes each reader of a user's file for FUZZ_TIME seconds:
# the unpickler (pickle), an MMSA feature file past it (dataset), and safetensors weights loaded into a module
# (safetensors); FUZZ_TARGETS picks some. Crashes land in $(BUILD)/fuzz/<target>/. Only the fuzzed sources are
# rebuilt with fuzzer/sanitizer instrumentation; clang's -fopenmp is swapped for -lgomp because the library is
# built with g++'s OpenMP.
FUZZ_CXX ?= clang++
FUZZ_TIME ?= 60
FUZZ_ALL := pickle dataset safetensors
FUZZ_TARGETS ?= $(FUZZ_ALL)
FUZZ_FLAGS := -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I. -I$(BLAS_INC)
PICKLE_SRCS := data/pickle.cpp data/pickle_value.cpp data/numpy_array.cpp
FUZZ_SRCS_pickle := fuzz/fuzz_pickle.cpp $(PICKLE_SRCS)
FUZZ_SRCS_dataset := fuzz/fuzz_dataset.cpp data/dataset.cpp $(PICKLE_SRCS)
FUZZ_SRCS_safetensors := fuzz/fuzz_safetensors.cpp engine/checkpoint.cpp models/checkpoint_io.cpp
FUZZ_SEEDS_pickle := tests/golden/pickle
FUZZ_SEEDS_dataset := tests/golden/pickle
FUZZ_SEEDS_safetensors := tests/golden/checkpoint
FUZZ_ARGS_pickle := -max_len=4096 -dict=fuzz/corpus/pickle.dict
FUZZ_ARGS_dataset := -max_len=8192 -dict=fuzz/corpus/pickle.dict
FUZZ_ARGS_safetensors := -max_len=4096 -dict=fuzz/corpus/safetensors.dict
.PHONY: fuzz
define fuzz_rule
$(BUILD)/fuzz_$(1): $(FUZZ_SRCS_$(1)) $(LIB)
	$(FUZZ_CXX) $(FUZZ_FLAGS) $(FUZZ_SRCS_$(1)) $(LIB) -o $$@ $(filter-out -fopenmp,$(LDFLAGS)) $(LDLIBS) -lgomp
endef
$(foreach t,$(FUZZ_ALL),$(eval $(call fuzz_rule,$(t))))
define run_fuzz
	@mkdir -p $(BUILD)/fuzz/$(1)/corpus
	MSMIX_ALLOC=system $(BUILD)/fuzz_$(1) -max_total_time=$(FUZZ_TIME) -rss_limit_mb=1024 -malloc_limit_mb=256 \
	  $(FUZZ_ARGS_$(1)) -artifact_prefix=$(BUILD)/fuzz/$(1)/ $(BUILD)/fuzz/$(1)/corpus $(FUZZ_SEEDS_$(1))

endef
fuzz: $(FUZZ_TARGETS:%=$(BUILD)/fuzz_%)
	$(foreach t,$(FUZZ_TARGETS),$(call run_fuzz,$(t)))

# `make train`: the README's main job. TFN with and without MS-Mix over three seeds on the embedded synthetic
# MOSI (text cut to 10 steps, at most 12 epochs: under 3 minutes on 2 cores), or on a real MMSA file with
# MMSA's own epochs and early stop: `make train DATA=path.pkl MODEL=lmf`. Runs land in
# runs/compare-<model>-<data>; a rerun reuses finished runs and resumes an interrupted one (docs/training.md).
MODEL ?= tfn
DATA ?= synthetic:mosi
MIX ?= none,msmix
SEEDS ?= 1111,1112,1113
DEVICE ?= cpu
TRAIN_FLAGS ?= $(if $(filter synthetic:%,$(DATA)),--epochs 12 --set synthetic_max_steps=10)
# Runs at a time (compare --jobs; each gets max(1, cores / JOBS) threads): small models barely use a second
# thread, so two runs at once finish the table sooner than one run on two threads.
JOBS ?= 2
.PHONY: train
train: $(BUILD)/msmix
	$(BUILD)/msmix compare --model $(MODEL) --data $(DATA) --mix $(MIX) --seeds $(SEEDS) --device $(DEVICE) \
	  --jobs $(JOBS) $(TRAIN_FLAGS)
