#!/usr/bin/env python3
"""go_perf_symbols.py - name the functions of a stripped Go binary in a perf profile.

kubectl (and other release Go binaries) ship without an ELF symbol table, so `perf report`
shows bare addresses; Go keeps its own function table (.gopclntab, go1.18+ layout) for stack
traces, which is what this reads.

Usage:
  perf record -g -o k.data -- kubectl ...            (or -p PID)
  perf script -i k.data -F ip,sym,dso | bench/go_perf_symbols.py /path/to/kubectl [TOP]
Prints the TOP (default 40) functions by self and by inclusive samples; kernel and library
frames keep perf's names.  perf prints user addresses of the binary relative to its mapping,
which for Go's fixed 0x400000 base is the file offset; the script adds the base back.
"""
import bisect
import collections
import re
import struct
import subprocess
import sys

BASE = 0x400000


def load_functab(path):
    out = subprocess.check_output(['readelf', '-SW', path]).decode()
    sec = None
    for line in out.splitlines():
        m = re.search(r'\]\s+\.gopclntab\s+\S+\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)', line)
        if m:
            sec = [int(x, 16) for x in m.groups()]
    if not sec:
        sys.exit('no .gopclntab in ' + path)
    _addr, off, size = sec
    with open(path, 'rb') as f:
        f.seek(off)
        tab = f.read(size)
    magic, = struct.unpack_from('<I', tab, 0)
    if magic not in (0xfffffff0, 0xfffffff1):
        sys.exit('unsupported pclntab magic %#x (go1.18+ expected)' % magic)
    nfunc, _nfiles, text, funcname_off, _cu, _file, _pc, pcln_off = \
        struct.unpack_from('<QQQQQQQQ', tab, 8)
    starts, names = [], []
    for i in range(nfunc):
        entry_off, func_off = struct.unpack_from('<II', tab, pcln_off + 8 * i)
        _entry, name_off = struct.unpack_from('<Ii', tab, pcln_off + func_off)
        s = funcname_off + name_off
        starts.append(text + entry_off)
        names.append(tab[s:tab.index(b'\0', s)].decode(errors='replace'))
    return starts, names


def main():
    binary = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    starts, names = load_functab(binary)
    exe = binary.rsplit('/', 1)[-1]

    def name(addr):
        i = bisect.bisect_right(starts, addr) - 1
        return names[i] if i >= 0 else hex(addr)

    own, incl = collections.Counter(), collections.Counter()
    total = 0
    stack = []

    def flush():
        nonlocal total
        if stack:
            total += 1
            own[stack[0]] += 1
            for fn in set(stack):
                incl[fn] += 1
        stack.clear()

    for line in sys.stdin:
        if not line.startswith(('\t', ' ')) or not line.strip():
            flush()
            continue
        parts = line.split()
        try:
            addr = int(parts[0], 16)
        except ValueError:
            continue
        dso = parts[-1]
        if exe in dso:
            stack.append(name(addr + BASE))
        else:
            sym = parts[1].split('+')[0] if len(parts) > 2 else '?'
            stack.append(sym + (' [k]' if 'kernel' in dso else ''))
    flush()
    if not total:
        sys.exit('no samples')
    print('samples', total)
    for title, counter in (('self', own), ('inclusive', incl)):
        print('---', title)
        for fn, c in counter.most_common(top):
            print('%5.1f%%  %s' % (100.0 * c / total, fn))


if __name__ == '__main__':
    main()
