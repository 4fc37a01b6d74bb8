#   agentd - an actor runtime for agents
#
#   make            build everything into $(B)/
#   make check      build and run every test; ends with "N passed, N failed"
#   make memcheck   the same tests under valgrind
#   make demo       run the seed's example, distributed
#   make install    PREFIX=/usr/local DESTDIR=
#   make dep        install missing build packages (as root) or name them
#
#   SANITIZE=1 builds with AddressSanitizer and UBSan (into build-asan/).
#   WERROR= turns warnings back into warnings.

PREFIX      ?= /usr/local
DESTDIR     ?=
LIBDIR      ?= $(PREFIX)/lib
INCLUDEDIR  ?= $(PREFIX)/include
BINDIR      ?= $(PREFIX)/bin
SBINDIR     ?= $(PREFIX)/sbin
MANDIR      ?= $(PREFIX)/share/man
PLUGINDIR   ?= $(LIBDIR)/agentd
SYSCONFDIR  ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
SYSTEMDDIR  ?= $(LIBDIR)/systemd/system

VERSION     = 0.1.0
SOVERSION   = 0

CC          ?= cc
OPTIMIZE    ?= -O2 -g
WARNINGS    = -Wall -Wextra -Wshadow -Wpointer-arith -Wformat=2 \
              -Wno-unused-parameter -Wno-format-nonliteral
WERROR      ?= -Werror

ifdef SANITIZE
B           ?= build-asan
OPTIMIZE    = -O1 -g -fno-omit-frame-pointer
SANFLAGS    = -fsanitize=address,undefined -fno-sanitize-recover=undefined
else
B           ?= build
SANFLAGS    =
endif

#   msgpack-c is "msgpack-c" upstream and "msgpack" on Debian 12
MSGPACK_PC  := $(shell pkg-config --exists msgpack-c 2>/dev/null \
                 && echo msgpack-c || echo msgpack)
PKGS        = libzmq libczmq libsodium $(MSGPACK_PC)

ifeq ($(filter dep clean distclean,$(MAKECMDGOALS)),)
DEPS_OK     := $(shell pkg-config --exists $(PKGS) jansson 2>/dev/null \
                 && echo yes)
ifneq ($(DEPS_OK),yes)
$(info Build packages missing; running contrib/deps.sh)
DEPS_RUN    := $(shell sh contrib/deps.sh >&2; echo $$?)
ifneq ($(DEPS_RUN),0)
$(error missing build packages: see the message above)
endif
endif
endif

#   agentctl also converts JSON, with jansson
CTL_PKGS    = jansson

PKG_CFLAGS  := $(shell pkg-config --cflags $(PKGS) $(CTL_PKGS) 2>/dev/null)
PKG_LIBS    := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

ALL_CFLAGS  = -std=gnu11 -D_GNU_SOURCE -fPIC -fvisibility=hidden -pthread \
              $(WARNINGS) $(WERROR) $(OPTIMIZE) $(SANFLAGS) $(CFLAGS) \
              -Icommon -Iprotocol -Iclient -Idaemon $(PKG_CFLAGS) \
              -DAG_PLUGINDIR='"$(PLUGINDIR)"' \
              -DAG_AGENTD_PATH='"$(SBINDIR)/agentd"'
ALL_LDFLAGS = -pthread $(SANFLAGS) $(LDFLAGS)
LIBS        = $(PKG_LIBS) -ldl -lm

COMMON_SRC  = common/ag_value.c common/ag_idmap.c common/ag_class.c \
              common/ag_msg.c common/ag_cert.c \
              protocol/ag_proto.c protocol/ag_status.c
CLIENT_SRC  = client/agc_conn.c client/agc_future.c client/agc_open.c \
              client/agc_watch.c \
              client/agc_query.c \
              client/agc_agent.c client/agc_spawn.c \
              client/agc_cluster.c
SERVER_SRC  = daemon/agd_server.c daemon/agd_broker.c daemon/agd_admit.c \
              daemon/agd_pool.c daemon/agd_agents.c daemon/agd_watch.c \
              daemon/agd_worker.c daemon/agd_registry.c daemon/agd_store.c \
              daemon/agd_config.c daemon/agd_notify.c daemon/agd_client.c \
              daemon/agd_auth.c daemon/agd_future.c daemon/agd_account.c \
              daemon/agd_refs.c daemon/agd_peers.c daemon/agd_index.c \
              daemon/agd_cancel.c daemon/agd_fatal.c daemon/agd_actor.c \
              daemon/agd_host.c daemon/agd_hostcall.c \
              daemon/agd_hostrun.c

COMMON_OBJ  = $(COMMON_SRC:%.c=$(B)/%.o)
CLIENT_OBJ  = $(CLIENT_SRC:%.c=$(B)/%.o)
SERVER_OBJ  = $(SERVER_SRC:%.c=$(B)/%.o)

CLIENT_A    = $(B)/libagentclient.a
CLIENT_SO   = $(B)/libagentclient.so.$(VERSION)
SERVER_A    = $(B)/libagentserver.a
SERVER_SO   = $(B)/libagentserver.so.$(VERSION)

PLUGINS     = $(B)/plugins/seed.so $(B)/plugins/testclasses.so \
              $(B)/plugins/relay.so
EXAMPLES    = $(B)/examples/dist_server $(B)/examples/dist_main \
              $(B)/examples/example $(B)/examples/pipeline
PROGRAMS    = $(B)/agentd $(B)/agentctl
CTL_SRC     = client/agentctl.c $(wildcard client/agctl_*.c)
CTL_OBJ     = $(CTL_SRC:%.c=$(B)/%.o)
TESTS       = $(B)/tests/selftest $(B)/tests/agtest $(B)/tests/sectest \
              $(B)/tests/attacktest $(B)/tests/faulttest \
              $(B)/tests/hosttest
BENCH       = $(B)/bench/agentbench

HEADERS     = common/agent.h protocol/ag_status.h client/agentclient.h \
              daemon/agentserver.h

.PHONY: all check memcheck demo install uninstall clean dep bench
all: $(CLIENT_A) $(CLIENT_SO) $(SERVER_A) $(SERVER_SO) $(PROGRAMS) \
     $(PLUGINS) $(EXAMPLES) $(TESTS) $(BENCH) $(B)/agentclient.pc $(B)/agentserver.pc

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

-include $(shell find $(B) -name '*.d' 2>/dev/null)

#   Both libraries carry the shared code; only the public API is exported
$(CLIENT_A): $(COMMON_OBJ) $(CLIENT_OBJ)
	@rm -f $@
	ar rcs $@ $^

#   A server is a client too, of the servers whose futures it is given
$(SERVER_A): $(COMMON_OBJ) $(CLIENT_OBJ) $(SERVER_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(CLIENT_SO): $(COMMON_OBJ) $(CLIENT_OBJ)
	$(CC) -shared -Wl,-soname,libagentclient.so.$(SOVERSION) \
	    $(ALL_LDFLAGS) -o $@ $^ $(LIBS)
	ln -sf libagentclient.so.$(VERSION) $(B)/libagentclient.so.$(SOVERSION)
	ln -sf libagentclient.so.$(SOVERSION) $(B)/libagentclient.so

$(SERVER_SO): $(COMMON_OBJ) $(CLIENT_OBJ) $(SERVER_OBJ)
	$(CC) -shared -Wl,-soname,libagentserver.so.$(SOVERSION) \
	    $(ALL_LDFLAGS) -o $@ $^ $(LIBS)
	ln -sf libagentserver.so.$(VERSION) $(B)/libagentserver.so.$(SOVERSION)
	ln -sf libagentserver.so.$(SOVERSION) $(B)/libagentserver.so

#   Programs that load plugins export the whole ag_ API to them: all of
#   the library goes in (--whole-archive), exported (-rdynamic)
WHOLE       = -Wl,--whole-archive
NOWHOLE     = -Wl,--no-whole-archive

$(B)/agentd: $(B)/daemon/agentd.o $(SERVER_A)
	$(CC) -rdynamic $(ALL_LDFLAGS) -o $@ $< $(WHOLE) $(SERVER_A) $(NOWHOLE) \
	    $(LIBS)

#   Plugins leave the ag_ API undefined: the host program provides it
#   agentctl: a client of the public protocol, nothing more
$(B)/agentctl: $(CTL_OBJ) $(CLIENT_A)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS) $(shell pkg-config --libs $(CTL_PKGS))

$(B)/plugins/%.so: contrib/plugins/%.c common/agent.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -shared -o $@ $<

$(B)/plugins/%.so: tests/plugins/%.c common/agent.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -shared -o $@ $<

$(B)/examples/dist_server: $(B)/contrib/examples/dist_server.o \
                           $(B)/contrib/plugins/seed.o $(SERVER_A)
	@mkdir -p $(dir $@)
	$(CC) -rdynamic $(ALL_LDFLAGS) -o $@ $(filter %.o,$^) \
	    $(WHOLE) $(SERVER_A) $(NOWHOLE) $(LIBS)

$(B)/examples/%: $(B)/contrib/examples/%.o $(CLIENT_A)
	@mkdir -p $(dir $@)
	$(CC) -rdynamic $(ALL_LDFLAGS) -o $@ $< $(WHOLE) $(CLIENT_A) $(NOWHOLE) \
	    $(LIBS)

$(B)/bench/agentbench: $(B)/contrib/bench/agentbench.o $(CLIENT_A)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(B)/tests/selftest: $(B)/tests/selftest.o $(B)/client/agc_test.o \
                     $(CLIENT_OBJ) $(SERVER_OBJ) \
                     $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -rdynamic $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

#   agtest and sectest start their processes with tests/testlib
TESTLIB_OBJ = $(B)/tests/testlib.o

AGTEST_OBJ  = $(B)/tests/agtest.o $(B)/tests/agtest_calls.o \
              $(B)/tests/agtest_server.o $(B)/tests/agtest_faults.o \
              $(B)/tests/agtest_seed.o $(B)/tests/agtest_ops.o

$(B)/tests/agtest: $(AGTEST_OBJ) $(TESTLIB_OBJ) \
                   $(CLIENT_OBJ) $(SERVER_OBJ) $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -rdynamic $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(B)/tests/sectest: $(B)/tests/sectest.o $(TESTLIB_OBJ) \
                    $(CLIENT_OBJ) $(SERVER_OBJ) $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -rdynamic $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(B)/tests/faulttest: $(B)/tests/faulttest.o $(TESTLIB_OBJ) \
                      $(CLIENT_OBJ) $(SERVER_OBJ) $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -rdynamic $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(B)/tests/hosttest: $(B)/tests/hosttest.o $(TESTLIB_OBJ) \
                     $(CLIENT_OBJ) $(SERVER_OBJ) $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -rdynamic $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(B)/tests/attacktest: $(B)/tests/attacktest.o $(B)/tests/attack_lib.o \
                       $(B)/tests/attack_raw.o $(B)/tests/attack_fake.o \
                       $(B)/tests/attack_futures.o \
                       $(B)/tests/attack_memory.o \
                       $(B)/tests/attack_clients.o $(TESTLIB_OBJ) \
                       $(CLIENT_OBJ) $(SERVER_OBJ) $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -rdynamic $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

#   pkg-config files, written from this Makefile's own variables; install
#   writes them again so they carry the PREFIX in force then
define pc_text
prefix=$(PREFIX)
libdir=$(LIBDIR)
includedir=$(INCLUDEDIR)

Name: agent$(1)
Description: $(2) of the agentd actor runtime
Version: $(VERSION)
Requires: $(MSGPACK_PC)
Requires.private: $(PKGS)
Libs: -L$${libdir} -lagent$(1)
Libs.private: -ldl -lm -pthread
Cflags: -I$${includedir}
endef
export CLIENT_PC = $(call pc_text,client,client library)
export SERVER_PC = $(call pc_text,server,embeddable agent server)

$(B)/agentclient.pc $(B)/agentserver.pc: Makefile
	@mkdir -p $(B)
	@echo "$$CLIENT_PC" > $(B)/agentclient.pc
	@echo "$$SERVER_PC" > $(B)/agentserver.pc

#   Tests: unit selftests, then integration tests with real agentd
#   processes. tests/check.sh prints the one closing count.
check: all
	@SANFLAGS="$(SANFLAGS)" sh tests/check.sh $(B)

memcheck: all
	@AGTEST_VALGRIND=1 sh tests/check.sh $(B)

#   The guide's example, child mode: local agents, then each moved to a
#   child server of its own
demo: all
	AGENTD=$(B)/agentd $(B)/examples/dist_main --plugin $(B)/plugins/seed.so

bench: all
	$(B)/bench/agentbench $(B)

install: all
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) \
	    $(DESTDIR)$(SBINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig \
	    $(DESTDIR)$(PLUGINDIR) $(DESTDIR)$(MANDIR)/man8 \
	    $(DESTDIR)$(MANDIR)/man3
	install -m 644 $(HEADERS) $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 $(CLIENT_A) $(SERVER_A) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(CLIENT_SO) $(SERVER_SO) $(DESTDIR)$(LIBDIR)/
	cp -P $(B)/libagentclient.so.$(SOVERSION) $(B)/libagentclient.so \
	    $(B)/libagentserver.so.$(SOVERSION) $(B)/libagentserver.so \
	    $(DESTDIR)$(LIBDIR)/
	echo "$$CLIENT_PC" > $(DESTDIR)$(LIBDIR)/pkgconfig/agentclient.pc
	echo "$$SERVER_PC" > $(DESTDIR)$(LIBDIR)/pkgconfig/agentserver.pc
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1
	install -m 755 $(B)/agentd $(DESTDIR)$(SBINDIR)/
	install -m 755 $(B)/agentctl $(DESTDIR)$(BINDIR)/
	install -m 755 $(B)/plugins/seed.so $(DESTDIR)$(PLUGINDIR)/
	install -d $(DESTDIR)$(SYSTEMDDIR) $(DESTDIR)$(SYSCONFDIR)/agentd
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	    contrib/systemd/agentd.service.in \
	    > $(DESTDIR)$(SYSTEMDDIR)/agentd.service
	if [ ! -e $(DESTDIR)$(SYSCONFDIR)/agentd/agentd.conf ]; then \
	    install -m 644 contrib/agentd.conf $(DESTDIR)$(SYSCONFDIR)/agentd/; \
	else \
	    install -m 644 contrib/agentd.conf \
	        $(DESTDIR)$(SYSCONFDIR)/agentd/agentd.conf.new; fi
	install -m 644 man/agentd.8 $(DESTDIR)$(MANDIR)/man8/
	if [ -f man/agentd.conf.5 ]; then install -d $(DESTDIR)$(MANDIR)/man5 && \
	    install -m 644 man/agentd.conf.5 $(DESTDIR)$(MANDIR)/man5/; fi
	if [ -f man/agentctl.1 ]; then \
	    install -m 644 man/agentctl.1 $(DESTDIR)$(MANDIR)/man1/; fi
	install -m 644 man/libagentclient.3 man/agent.3 man/agentserver.3 \
	    $(DESTDIR)$(MANDIR)/man3/

uninstall:
	rm -f $(addprefix $(DESTDIR)$(INCLUDEDIR)/,$(notdir $(HEADERS)))
	rm -f $(DESTDIR)$(LIBDIR)/libagentclient.* $(DESTDIR)$(LIBDIR)/libagentserver.*
	rm -f $(DESTDIR)$(LIBDIR)/pkgconfig/agentclient.pc \
	    $(DESTDIR)$(LIBDIR)/pkgconfig/agentserver.pc
	rm -f $(DESTDIR)$(SYSTEMDDIR)/agentd.service \
	    $(DESTDIR)$(MANDIR)/man5/agentd.conf.5
	rm -f $(DESTDIR)$(SBINDIR)/agentd $(DESTDIR)$(PLUGINDIR)/seed.so \
	    $(DESTDIR)$(BINDIR)/agentctl $(DESTDIR)$(MANDIR)/man1/agentctl.1
	rm -f $(DESTDIR)$(MANDIR)/man8/agentd.8 \
	    $(addprefix $(DESTDIR)$(MANDIR)/man3/,libagentclient.3 agent.3 agentserver.3)

dep:
	@sh contrib/deps.sh

clean:
	rm -rf build build-asan build-fuzz

#   libFuzzer harnesses (clang): fuzz-build, fuzz-quick, fuzz, fuzz-regress
include tests/fuzz/fuzz.mk
