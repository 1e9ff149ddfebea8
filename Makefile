# ckube build. One binary (build/ckube), one unit-test binary per tests/unit/*.c.
# Sources are found by wildcard so adding a file needs no Makefile edit.

CC      ?= cc
BUILD   ?= build
PKGS    := jansson yaml-0.1 openssl libcurl sqlite3 libevent libevent_openssl libevent_pthreads zlib \
           liburing libnftnl libmnl
CFLAGS  ?= -O2 -g
override CFLAGS += -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -Wshadow=local \
           -D_GNU_SOURCE -Isrc -MMD -MP $(SAN) \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# libcurl is not linked: src/lib/curl_lazy.c loads it on first use (it and its ~25 dependencies
# cost every process ~3 MB resident at exec, most never make a request)
LDLIBS  += $(shell pkg-config --libs $(filter-out libcurl,$(PKGS)) 2>/dev/null) -lprotobuf-c -lpthread -lm
override LDFLAGS += $(SAN)
# The allocator every process runs on (docs/allocator.md): jemalloc from Debian's static PIC
# archive, so all mallocs (libc's, jansson's, OpenSSL's) use it and no libstdc++ is loaded;
# its tuning is in src/lib/alloc.c.  ALLOC=glibc keeps libc's malloc; sanitizer builds always do
# (ASan brings its own allocator).
ALLOC   ?= jemalloc
ifneq ($(strip $(SAN)),)
override ALLOC := glibc
endif
ifeq ($(ALLOC),jemalloc)
ALLOC_PKG := jemalloc
override CFLAGS += -DCK_ALLOC_JEMALLOC
LDLIBS  += -Wl,--push-state,-Bstatic -ljemalloc_pic -Wl,--pop-state -ldl
endif

SRCS      := $(sort $(wildcard src/*.c src/*/*.c))
LIB_SRCS  := $(filter-out src/main.c,$(SRCS))
OBJS      := $(SRCS:%.c=$(BUILD)/obj/%.o)
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
UNIT_SRCS := $(sort $(wildcard tests/unit/*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
BENCH_SRCS := $(sort $(wildcard bench/*.c))
BENCH_BINS := $(BENCH_SRCS:bench/%.c=$(BUILD)/bench/%)

.PHONY: all deps deps-check test unit e2e run asan clean bench
all: deps-check $(BUILD)/ckube $(UNIT_BINS) $(BENCH_BINS)

# Debian packages needed to build, test and run. `make deps` installs what is missing.
DEB_BUILD := gcc make pkg-config libjansson-dev libyaml-dev libssl-dev libcurl4-openssl-dev \
             libsqlite3-dev libevent-dev libprotobuf-c-dev zlib1g-dev libcmocka-dev liburing-dev \
             libnftnl-dev libmnl-dev libjemalloc-dev
DEB_RUN   := etcd-server etcd-client tzdata runc containernetworking-plugins iptables nftables \
             busybox-static umoci skopeo docker-registry wrk python3-kubernetes iproute2 procps \
             conntrack
deps:
	@missing=""; for p in $(DEB_BUILD) $(DEB_RUN); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) >/dev/null || \
	  { echo "make deps: apt-get install failed for:$$missing" >&2; exit 1; }; fi

deps-check:
	@pkg-config --exists $(PKGS) $(ALLOC_PKG) || $(MAKE) --no-print-directory deps

# V=1 shows the full compiler command lines.
Q := $(if $(V),,@)

# Order-only on deps-check: under -j the packages (headers) must be in before the first compile.
$(BUILD)/obj/%.o: %.c | deps-check
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/ckube: $(OBJS)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(LIB_OBJS) | deps-check
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  TEST    $@")
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(LIB_OBJS) $(LDFLAGS) $(LDLIBS) -lcmocka

$(BUILD)/bench/%: bench/%.c $(LIB_OBJS) | deps-check
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  BENCH   $@")
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(LIB_OBJS) $(LDFLAGS) $(LDLIBS)

# Every tier: unit tests, then end-to-end tests against real processes.
test: deps all
	@tests/run.sh $(BUILD)

unit: all
	@TIERS=unit tests/run.sh $(BUILD)

e2e: all
	@TIERS=e2e tests/run.sh $(BUILD)

run: deps all
	@mkdir -p $${DATA_DIR:-/var/lib/ckube}
	$(BUILD)/ckube server --data-dir $${DATA_DIR:-/var/lib/ckube}

# The whole suite under AddressSanitizer + UndefinedBehaviorSanitizer, in its own build dir.
asan:
	$(MAKE) BUILD=build-asan CC=gcc SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" CFLAGS="-O1 -g" test

bench: all
	@for b in bench/*.sh; do [ -x "$$b" ] || continue; echo "== $$b"; $$b $(BUILD) || exit 1; done

clean:
	rm -rf build build-asan

-include $(OBJS:.o=.d) $(UNIT_BINS:=.d) $(BENCH_BINS:=.d)
