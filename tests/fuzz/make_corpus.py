#!/usr/bin/env python3
#   make_corpus.py - writes the seed corpora of the libFuzzer harnesses
#
#   Copyright (c) the agentd authors. MIT licence; see LICENSE.
#
#   python3 tests/fuzz/make_corpus.py [DIR]
#
#   Writes DIR/proto/ and DIR/request/ (DIR defaults to the corpus/
#   directory next to this script): small valid AGP/1 messages for every
#   command, and some malformed ones, each one binary file holding one
#   frame (envelope and body). proto/ also gets bare msgpack bodies, as
#   fuzz_proto reads anything that does not start with a full AGP01
#   envelope as a body alone. The msgpack is written by hand, so the
#   output depends on nothing but this file.

import os
import struct
import sys

#   ---------------------------------------------------------------------
#   msgpack, the subset the seeds need, always in the shortest form

class Raw:
    """Octets written as they are, for malformed encodings."""
    def __init__(self, data):
        self.data = bytes(data)

class Bin:
    """A msgpack bin (Python bytes are written as bin too)."""
    def __init__(self, data):
        self.data = bytes(data)

class Ext:
    def __init__(self, code, data):
        self.code = code
        self.data = bytes(data)

def pack(value):
    if isinstance(value, Raw):
        return value.data
    if value is None:
        return b'\xc0'
    if value is False:
        return b'\xc2'
    if value is True:
        return b'\xc3'
    if isinstance(value, int):
        return pack_int(value)
    if isinstance(value, float):
        return b'\xcb' + struct.pack('>d', value)
    if isinstance(value, str):
        return pack_str(value.encode('utf-8'))
    if isinstance(value, (bytes, Bin)):
        data = value.data if isinstance(value, Bin) else value
        return pack_len(len(data), None, 0xc4, 0xc5, 0xc6) + data
    if isinstance(value, Ext):
        return pack_ext(value.code, value.data)
    if isinstance(value, (list, tuple)):
        head = pack_len(len(value), 0x90, None, 0xdc, 0xdd, fix_max=15)
        return head + b''.join(pack(item) for item in value)
    if isinstance(value, dict):
        head = pack_len(len(value), 0x80, None, 0xde, 0xdf, fix_max=15)
        return head + b''.join(pack(k) + pack(v) for k, v in value.items())
    raise TypeError('cannot pack %r' % (value,))

def pack_int(n):
    if 0 <= n <= 0x7f:
        return bytes([n])
    if -32 <= n < 0:
        return bytes([n & 0xff])
    if n >= 0:
        for tag, fmt, top in ((0xcc, '>B', 0xff), (0xcd, '>H', 0xffff),
                              (0xce, '>I', 0xffffffff),
                              (0xcf, '>Q', 0xffffffffffffffff)):
            if n <= top:
                return bytes([tag]) + struct.pack(fmt, n)
    for tag, fmt, bits in ((0xd0, '>b', 8), (0xd1, '>h', 16),
                           (0xd2, '>i', 32), (0xd3, '>q', 64)):
        if n >= -(1 << (bits - 1)):
            return bytes([tag]) + struct.pack(fmt, n)
    raise ValueError('integer out of range: %d' % n)

def pack_len(n, fix, tag8, tag16, tag32, fix_max=31):
    if fix is not None and n <= fix_max:
        return bytes([fix | n])
    if tag8 is not None and n <= 0xff:
        return bytes([tag8, n])
    if n <= 0xffff:
        return bytes([tag16]) + struct.pack('>H', n)
    return bytes([tag32]) + struct.pack('>I', n)

def pack_str(data):
    return pack_len(len(data), 0xa0, 0xd9, 0xda, 0xdb) + data

def pack_ext(code, data):
    fixed = {1: 0xd4, 2: 0xd5, 4: 0xd6, 8: 0xd7, 16: 0xd8}
    code = struct.pack('>b', code)
    if len(data) in fixed:
        return bytes([fixed[len(data)]]) + code + data
    return pack_len(len(data), None, 0xc7, 0xc8, 0xc9) + code + data

#   ---------------------------------------------------------------------
#   AGP/1 frames (PROTOCOL.md section 2)

PING, INFO, CREATE, CALL, GETATTR, DELETE, LIST, FETCH, LOOKUP, CANCEL = \
    range(1, 11)
REPLY = 0x80
KEEP = 0x0001

def envelope(command, word=0, corr=1, agent=0, signature=b'AGP01'):
    return signature + struct.pack('>BHQQ', command, word, corr, agent)

def frame(command, body=None, word=0, corr=1, agent=0):
    data = envelope(command, word, corr, agent)
    if body is not None:
        data += pack(body)
    return data

#   The id of the agent the request harness keeps alive is not known
#   here: its variant with a valid envelope patches it in. Agent 1
#   never exists (ids start from the server's start time).
AGENT = 1

#   The request harness's DEALER routing id, so FETCH seeds name it
OWNER = b'Cfuzz-request'

def ref(endpoint, corr, owner=None):
    """A future reference (PROTOCOL.md 4.10)."""
    return Ext(0x41, pack([endpoint, owner or OWNER, corr]))

def deep(levels, leaf=1):
    return Raw(b'\x91' * levels + pack(leaf))

def messages():
    """(name, frame) pairs, valid and malformed, for both harnesses."""
    seeds = [
        #   PING, INFO, LIST: envelope alone
        ('ping', frame(PING, corr=1)),
        ('info', frame(INFO, corr=2)),
        ('list', frame(LIST, corr=3)),
        #   CREATE
        ('create-counter', frame(CREATE, {'class': 'Counter',
                                          'args': {'start': 5}}, corr=4)),
        ('create-named', frame(CREATE, {'class': 'Counter', 'name': 'c1',
                                        'args': {'label': 'seed'}}, corr=5)),
        ('create-name-nil', frame(CREATE, {'class': 'Once', 'name': None},
                                  corr=6)),
        ('create-keeper-state', frame(CREATE, {'class': 'Keeper',
                                               'args': {'start': 1},
                                               'state': {'count': 9}},
                                      corr=7)),
        ('create-echoer', frame(CREATE, {'class': 'Echoer', 'args': 'bob'},
                                corr=8)),
        ('create-broken', frame(CREATE, {'class': 'Broken'}, corr=9)),
        ('create-no-class', frame(CREATE, {'class': 'Nobody'}, corr=10)),
        ('create-bad-label', frame(CREATE, {'class': 'Counter',
                                            'args': {'label': 7}}, corr=11)),
        ('create-bad-name', frame(CREATE, {'class': 'Counter', 'name': 5},
                                  corr=12)),
        ('create-not-map', frame(CREATE, ['class', 'Counter'], corr=13)),
        ('create-empty', frame(CREATE, corr=14)),
        #   CALL
        ('call-add', frame(CALL, ['add', 3], corr=20, agent=AGENT)),
        ('call-add-neg', frame(CALL, ['add', -70000], corr=21, agent=AGENT)),
        ('call-echo', frame(CALL, ['echo', {'a': [1, 2.5, None, True],
                                            'b': b'\x00\x01',
                                            'c': Ext(5, b'xy')}],
                            corr=22, agent=AGENT)),
        ('call-echo-async-keep', frame(CALL, ['echo_async', 'kept'],
                                       word=KEEP, corr=23, agent=AGENT)),
        ('call-record-keep', frame(CALL, ['record', 42], word=KEEP,
                                   corr=24, agent=AGENT)),
        ('call-nap', frame(CALL, ['nap', {'ms': 0, 'tag': 't'}], corr=25,
                           agent=AGENT)),
        ('call-blob', frame(CALL, ['blob', {'size': 16}], corr=26,
                            agent=AGENT)),
        ('call-fail', frame(CALL, ['fail', None], corr=27, agent=AGENT)),
        ('call-no-method', frame(CALL, ['mul', 3], corr=28, agent=AGENT)),
        ('call-private', frame(CALL, ['_secret', None], corr=29,
                               agent=AGENT)),
        ('call-reply-msg', frame(CALL, ['reply', {'name': 'u', 'role': 'user',
                                                  'content': 'hi'}],
                                 corr=30, agent=AGENT)),
        ('call-one-element', frame(CALL, ['add'], corr=31, agent=AGENT)),
        ('call-nul-name', frame(CALL, ['a\x00b', None], corr=32,
                                agent=AGENT)),
        #   Futures among the arguments: the harness points them at its
        #   fake peer, which answers by the reference's corr (0 to 5),
        #   and at the server itself
        ] + [('call-ref-%d' % corr,
              frame(CALL, ['echo', {'v': ref('tcp://h:1', corr)}],
                    corr=33 + corr, agent=AGENT)) for corr in range(6)] + [
        ('call-refs-many', frame(CALL, ['echo', [ref('tcp://h:1', c)
                                                for c in range(8)]],
                                 word=KEEP, corr=39, agent=AGENT)),
        ('call-ref-self', frame(CALL, ['echo_async', ref('tcp://h:1', 90)],
                                word=KEEP, corr=90, agent=AGENT)),
        ('call-refs-too-many', frame(CALL, ['echo', [ref('tcp://h:1', 6)]
                                                    * 65],
                                     corr=91, agent=AGENT)),
        ('create-ref', frame(CREATE, {'class': 'Counter',
                                      'args': {'start': ref('tcp://h:1', 6),
                                               'label': 'r'}}, corr=92)),
        #   GETATTR
        ('getattr-count', frame(GETATTR, 'count', corr=40, agent=AGENT)),
        ('getattr-label', frame(GETATTR, 'label', corr=41, agent=AGENT)),
        ('getattr-log', frame(GETATTR, 'log', corr=42, agent=AGENT)),
        ('getattr-overlaps', frame(GETATTR, 'overlaps', corr=43,
                                   agent=AGENT)),
        ('getattr-missing', frame(GETATTR, 'missing', corr=44, agent=AGENT)),
        ('getattr-nil', frame(GETATTR, None, corr=45, agent=AGENT)),
        #   DELETE
        ('delete', frame(DELETE, corr=50, agent=AGENT)),
        #   FETCH
        ('fetch', frame(FETCH, [OWNER, 23], corr=60)),
        ('fetch-unknown', frame(FETCH, [b'\x43\x01', 9], corr=61)),
        ('fetch-bad', frame(FETCH, ['x', -1], corr=62)),
        ('lookup-name', frame(LOOKUP, 'nobody', corr=63)),
        ('lookup-id', frame(LOOKUP, 1, corr=64)),
        ('lookup-zero', frame(LOOKUP, 0, corr=65)),
        ('lookup-bad', frame(LOOKUP, [1], corr=66)),
        #   Deadlines and CANCEL
        #   (a timeout is a uint 32 at the end of the body; a shorter
        #   encoding is refused)
        ('call-timeout', frame(CALL, ['nap', {'ms': 5},
                                      Raw(b'\xce\x00\x00\x00\x01')],
                               corr=67, agent=AGENT)),
        ('call-timeout-long', frame(CALL, ['add', 1,
                                           Raw(b'\xce\x7f\xff\xff\xff')],
                                    word=KEEP, corr=68, agent=AGENT)),
        ('call-timeout-short', frame(CALL, ['add', 1, 1], corr=97,
                                     agent=AGENT)),
        ('call-timeout-bad', frame(CALL, ['add', 1, -1], corr=69,
                                   agent=AGENT)),
        ('cancel', frame(CANCEL, 67, corr=93, agent=AGENT)),
        ('cancel-unknown', frame(CANCEL, 12345, corr=94, agent=AGENT)),
        ('cancel-bad', frame(CANCEL, 'x', corr=95, agent=AGENT)),
        ('cancel-no-agent', frame(CANCEL, 1, corr=96, agent=AGENT + 1)),
        #   Malformed (PROTOCOL.md section 8)
        ('bad-not-agp', b'HTTP/1.1 200 OK\r\n\r\n'),
        ('bad-short', b'AG'),
        ('bad-version', envelope(PING, corr=70, signature=b'AGP02')),
        ('bad-version-short', b'AGP0'),
        ('bad-envelope-short', envelope(PING, corr=71)[:20]),
        ('bad-command', envelope(0x42, corr=72)),
        ('bad-command-zero-corr', envelope(0x00, corr=0)),
        ('bad-reply-command', frame(CALL | REPLY, ['add', 1], corr=73,
                                    agent=AGENT)),
        ('bad-body-trailing', envelope(CALL, corr=74, agent=AGENT)
                              + pack(['add', 1]) + b'\x00'),
        ('bad-body-deep', frame(CALL, ['echo', deep(40)], corr=75,
                                agent=AGENT)),
        ('bad-body-huge-count', envelope(CALL, corr=76, agent=AGENT)
                                + b'\xdd\xff\xff\xff\xff\x01'),
        ('bad-body-c1', envelope(GETATTR, corr=77, agent=AGENT) + b'\xc1'),
        ('bad-body-truncated-str', envelope(GETATTR, corr=78, agent=AGENT)
                                   + b'\xdb\x00\x00\x01\x00abc'),
        ('bad-body-huge-map', envelope(CREATE, corr=79)
                              + b'\xdf\x7f\xff\xff\xff\xa5class'),
        ('bad-too-large', envelope(PING, corr=80) + b'\xc0' * 1100),
    ]
    return seeds

def bodies():
    """(name, body) pairs: bare msgpack, for the codec harness."""
    return [
        ('body-create', pack({'class': 'Counter', 'args': {'start': 5},
                              'name': 'c1', 'state': None})),
        ('body-call', pack(['add', 3])),
        ('body-getattr', pack('count')),
        ('body-fetch', pack([OWNER, 0xffffffffffffffff])),
        ('body-msg', pack({'id': None, 'name': 'u', 'role': 'user',
                           'content': [1, 2], 'url': None,
                           'timestamp': '2024-01-01 00:00:00'})),
        ('body-scalars', pack([None, False, True, 0, 127, 128, 65536,
                               -1, -33, -129, -40000, -(1 << 40),
                               1 << 63, 1.5, 'x' * 40, b'\xff' * 300,
                               Raw(b'\xca\x3f\xc0\x00\x00')])),
        ('body-ext', pack([Ext(1, b'a'), Ext(-1, b'12345678'),
                           Ext(2, b'abc'), Ext(3, b'z' * 16),
                           Ext(4, b'')])),
        ('body-lookup', pack('ledger')),
        ('body-ref', pack(['echo', {'content': Ext(0x41, pack(
            ['tcp://h:1', OWNER, 7]))}])),
        ('body-ref-bad', pack([Ext(0x41, pack(['', OWNER, 7])),
                               Ext(0x41, pack(['tcp://h:1', b'', 7])),
                               Ext(0x41, pack(['tcp://h:1', OWNER, -7])),
                               Ext(0x41, pack(['tcp://h\x00:1', OWNER, 7])),
                               Ext(0x41, pack(['tcp://h:1', OWNER])),
                               Ext(0x41, b'\xc1')])),
        ('body-nested-32', pack(deep(31))),
        ('body-nested-33', pack(deep(33))),
        ('body-long-str', pack({'k' * 40: 'v' * 300})),
        ('body-dup-keys', b'\x82' + pack('class') + pack('A')
                          + pack('class') + pack(7)),
        ('body-empty', b''),
        ('body-trailing', pack(1) + pack(2)),
    ]

def write(directory, name, data):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name + '.bin'), 'wb') as file:
        file.write(data)

def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, 'corpus')
    for name, data in messages():
        write(os.path.join(out, 'proto'), name, data)
        write(os.path.join(out, 'request'), name, data)
    for name, data in bodies():
        write(os.path.join(out, 'proto'), name, data)
    print('%s: %d frames, %d bodies' % (out, len(messages()),
                                        len(bodies())))

if __name__ == '__main__':
    main()
