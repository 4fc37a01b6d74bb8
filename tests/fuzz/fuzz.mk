#   agentd - libFuzzer harnesses; a fragment the top Makefile includes
#
#   make fuzz-build     build the harnesses into $(FUZZ_B)/fuzz/
#   make fuzz-quick     run each harness for FUZZ_QUICK_TIME seconds
#                       (default 20); fails if one finds a crash
#   make fuzz           run each harness for FUZZ_TIME seconds (default 600)
#   make fuzz-regress   run each harness over tests/fuzz/regress/, the
#                       inputs of bugs found and fixed: fails if one is
#                       back
#   make fuzz-clean     remove $(FUZZ_B)
#
#   Include it at the end of the Makefile: it uses the Makefile's
#   variables (WARNINGS, PKG_CFLAGS, LIBS, COMMON_SRC, SERVER_SRC) in its
#   rules, and must not define the default goal.
#
#   Needs clang with libFuzzer (FUZZ_CC). Harnesses, library objects and
#   the test plugin are built with AddressSanitizer, UBSan and libFuzzer's
#   coverage. The seed corpus (tests/fuzz/corpus/, made by make_corpus.py)
#   is copied into $(FUZZ_B)/corpus/, where the runs add what they find;
#   crash inputs go to $(FUZZ_B)/artifacts/ and each run's output to
#   $(FUZZ_B)/logs/. Nothing is written into the source tree.

FUZZ_B          ?= build-fuzz
FUZZ_CC         ?= clang
FUZZ_TIME       ?= 600
FUZZ_QUICK_TIME ?= 20
FUZZ_ARGS       ?=

FUZZ_SAN        = -fsanitize=fuzzer,address,undefined \
                  -fno-sanitize-recover=undefined
#   The Makefile's warnings, less one that clang (unlike gcc) gives for
#   the { NULL } ending the method and attribute tables
FUZZ_WARNINGS   = $(WARNINGS) -Wno-missing-field-initializers
FUZZ_CFLAGS     = -std=gnu11 -D_GNU_SOURCE -fPIC -fvisibility=hidden \
                  -pthread $(FUZZ_WARNINGS) $(WERROR) -g -O1 \
                  -fno-omit-frame-pointer \
                  -Icommon -Iprotocol -Iclient -Idaemon $(PKG_CFLAGS) \
                  -DAG_PLUGINDIR='"$(PLUGINDIR)"' \
                  -DAG_AGENTD_PATH='"$(SBINDIR)/agentd"'

FUZZ_COMMON_OBJ = $(COMMON_SRC:%.c=$(FUZZ_B)/%.o)
FUZZ_SERVER_OBJ = $(SERVER_SRC:%.c=$(FUZZ_B)/%.o) \
                  $(CLIENT_SRC:%.c=$(FUZZ_B)/%.o)
FUZZ_PLUGIN     = $(FUZZ_B)/plugins/testclasses.so
FUZZ_TARGETS    = proto request
FUZZ_PROGRAMS   = $(FUZZ_TARGETS:%=$(FUZZ_B)/fuzz/fuzz_%)

#   Per harness: libFuzzer options. The request harness talks to a
#   server through sockets, so an input may take longer; it aborts by
#   itself if the server stops answering.
FUZZ_OPTS_proto   =
FUZZ_OPTS_request = -timeout=30

#   Sanitizers stop at the first error, with a stack
FUZZ_ENV        = ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 \
                  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
                  AGENTD_FUZZ_PLUGIN=$(abspath $(FUZZ_PLUGIN))

.PHONY: fuzz-build fuzz-quick fuzz fuzz-regress fuzz-clean

fuzz-build: $(FUZZ_PROGRAMS) $(FUZZ_PLUGIN)

$(FUZZ_B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) -MMD -MP -c $< -o $@

-include $(shell find $(FUZZ_B) -name '*.d' 2>/dev/null)

$(FUZZ_B)/fuzz/fuzz_proto: $(FUZZ_B)/tests/fuzz/fuzz_proto.o \
                           $(FUZZ_COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_SAN) -pthread -o $@ $^ $(LIBS)

#   The plugin leaves the ag_ API undefined: the harness exports it
$(FUZZ_B)/fuzz/fuzz_request: $(FUZZ_B)/tests/fuzz/fuzz_request.o \
                             $(FUZZ_SERVER_OBJ) $(FUZZ_COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_SAN) -rdynamic -pthread -o $@ $^ $(LIBS)

#   Instrumented like the rest, without libFuzzer's main; the sanitizer
#   runtimes come from the harness that loads it
$(FUZZ_PLUGIN): tests/plugins/testclasses.c common/agent.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) \
	    -fsanitize=fuzzer-no-link,address,undefined \
	    -fno-sanitize-recover=undefined -shared -o $@ $<

#   The request harness again, its agents in host processes: the normal
#   build's agentd and plugin (a host loads no instrumented plugin)
FUZZ_HOSTS_ENV  = AGENTD_FUZZ_ISOLATION=process \
                  AGENTD=$(abspath $(B)/agentd) \
                  AGENTD_FUZZ_PLUGIN=$(abspath $(B)/plugins/testclasses.so)

#   Run harness $(1) for $(2) seconds on the working copy of its corpus.
#   The output goes to a log; on failure its end is shown, and the
#   crash input is in $(FUZZ_B)/artifacts/.
#   $(3): more environment, and $(4) a name for its log and artifacts
#   (default the harness's).
define fuzz_run
	@mkdir -p $(FUZZ_B)/corpus/$(1) $(FUZZ_B)/artifacts $(FUZZ_B)/logs
	@cp tests/fuzz/corpus/$(1)/* $(FUZZ_B)/corpus/$(1)/
	@echo "fuzz_$(or $(4),$(1)): $(2) s, log in $(FUZZ_B)/logs/fuzz_$(or $(4),$(1)).log"
	@start=$$(date +%s); \
	if $(FUZZ_ENV) $(3) $(FUZZ_B)/fuzz/fuzz_$(1) $(FUZZ_OPTS_$(1)) \
	        -max_total_time=$(2) -print_final_stats=1 \
	        -artifact_prefix=$(FUZZ_B)/artifacts/$(or $(4),$(1))- \
	        $(FUZZ_ARGS) $(FUZZ_B)/corpus/$(1) \
	        > $(FUZZ_B)/logs/fuzz_$(or $(4),$(1)).log 2>&1; \
	then \
	    runs=$$(sed -n 's/^stat::number_of_executed_units: *//p' \
	            $(FUZZ_B)/logs/fuzz_$(or $(4),$(1)).log); \
	    rate=$$(sed -n 's/^stat::average_exec_per_sec: *//p' \
	            $(FUZZ_B)/logs/fuzz_$(or $(4),$(1)).log); \
	    echo "fuzz_$(or $(4),$(1)): OK, $$runs runs, $$rate exec/s," \
	         "$$(( $$(date +%s) - start )) s," \
	         "corpus $$(ls $(FUZZ_B)/corpus/$(1) | wc -l) inputs"; \
	else \
	    tail -n 80 $(FUZZ_B)/logs/fuzz_$(or $(4),$(1)).log; \
	    echo "fuzz_$(or $(4),$(1)): FAILED; inputs in $(FUZZ_B)/artifacts/:"; \
	    ls -t $(FUZZ_B)/artifacts | grep '^$(or $(4),$(1))-' | head -n 5; \
	    exit 1; \
	fi
endef

fuzz-quick: fuzz-build all
	$(call fuzz_run,proto,$(FUZZ_QUICK_TIME))
	$(call fuzz_run,request,$(FUZZ_QUICK_TIME))
	$(call fuzz_run,request,$(FUZZ_QUICK_TIME),$(FUZZ_HOSTS_ENV),request_hosts)

fuzz: fuzz-build all
	$(call fuzz_run,proto,$(FUZZ_TIME))
	$(call fuzz_run,request,$(FUZZ_TIME))
	$(call fuzz_run,request,$(FUZZ_TIME),$(FUZZ_HOSTS_ENV),request_hosts)

#   Inputs that crashed a harness: regress/proto-* and regress/request-*,
#   each run twice in a row (some need the state the first run leaves);
#   the request ones again with host processes
fuzz-regress: fuzz-build all
	@failed=0; \
	for input in tests/fuzz/regress/*; do \
	    target=$$(basename $$input | sed 's/-.*//'); \
	    [ -x $(FUZZ_B)/fuzz/fuzz_$$target ] || continue; \
	    if $(FUZZ_ENV) $(FUZZ_B)/fuzz/fuzz_$$target \
	            -runs=2 $$input > $(FUZZ_B)/fuzz/regress.log 2>&1; then \
	        echo "fuzz_$$target $$input: OK"; \
	    else \
	        grep -E -A3 'runtime error|ERROR: |expectation failed' \
	            $(FUZZ_B)/fuzz/regress.log | head -n 8; \
	        echo "fuzz_$$target $$input: FAILED"; \
	        failed=$$((failed + 1)); \
	    fi; \
	done; \
	for input in tests/fuzz/regress/request-*; do \
	    if $(FUZZ_ENV) $(FUZZ_HOSTS_ENV) $(FUZZ_B)/fuzz/fuzz_request \
	            -runs=2 $$input > $(FUZZ_B)/fuzz/regress.log 2>&1; then \
	        echo "fuzz_request (hosts) $$input: OK"; \
	    else \
	        grep -E -A3 'runtime error|ERROR: |expectation failed' \
	            $(FUZZ_B)/fuzz/regress.log | head -n 8; \
	        echo "fuzz_request (hosts) $$input: FAILED"; \
	        failed=$$((failed + 1)); \
	    fi; \
	done; \
	[ $$failed = 0 ]

fuzz-clean:
	rm -rf $(FUZZ_B)
