#!/usr/bin/env python3
"""bench/strace_firstbyte.py - kubectl's steps to the first byte, from an strace of one command.

Input: `strace -f -tt -e trace=execve,connect,read,write -o FILE kubectl ... exec POD -- echo x`
(or port-forward's first connection).  Output: one line of ms between the steps, per TCP
connection to the server (connect, request written = the third write on the socket: TLS 1.3
ClientHello, the client's certificate flight, then the request; the answer = the first read
after it), and the first write to stdout.  Usage: strace_firstbyte.py FILE [--timeline]
"""
import re
import sys

LINE = re.compile(r'^(\d+)\s+(\d+):(\d+):(\d+\.\d+)\s+(.*)$')


def ts(h, m, s):
    return (int(h) * 3600 + int(m) * 60 + float(s)) * 1000.0


def parse(path):
    t_exec = None
    conns = []            # dicts: fd, t_connect, writes [(t, n)], reads [(t, n)]
    live = {}             # fd -> conn
    pending = {}          # pid -> (call, fd, t)
    stdout = None
    for raw in open(path, errors='replace'):
        m = LINE.match(raw.rstrip('\n'))
        if not m:
            continue
        pid, body = m.group(1), m.group(5)
        t = ts(m.group(2), m.group(3), m.group(4))
        if body.startswith('execve(') and t_exec is None:
            t_exec = t
            continue
        um = re.match(r'(read|write|connect)\((\d+),.*<unfinished \.\.\.>$', body)
        if um:
            pending[pid] = (um.group(1), int(um.group(2)), t)
            continue
        rm = re.match(r'<\.\.\. (read|write|connect) resumed>.*= (-?\d+)', body)
        if rm and pid in pending:
            call, fd, t0 = pending.pop(pid)
            ret = int(rm.group(2))
            body = None
        else:
            cm = re.match(r'(read|write|connect)\((\d+),.*= (-?\d+)', body)
            if not cm:
                continue
            call, fd, ret = cm.group(1), int(cm.group(2)), int(cm.group(3))
            t0 = t
            if call == 'connect' and 'sin_port' not in raw:
                continue
        if call == 'connect':
            c = {'fd': fd, 't_connect': t0, 'writes': [], 'reads': []}
            conns.append(c)
            live[fd] = c
        elif call == 'write' and fd == 1 and ret > 0 and stdout is None:
            stdout = t0
        elif fd in live and ret > 0:
            live[fd]['writes' if call == 'write' else 'reads'].append((t0 if call == 'write' else t, ret))
    return t_exec, conns, stdout


def main():
    t_exec, conns, stdout = parse(sys.argv[1])
    if t_exec is None:
        print('no execve')
        return
    if '--timeline' in sys.argv:
        for i, c in enumerate(conns):
            ev = [(t, 'w', n) for t, n in c['writes']] + [(t, 'r', n) for t, n in c['reads']]
            ev.sort()
            print('conn %d fd %d connect %.1f: %s' % (i, c['fd'], c['t_connect'] - t_exec,
                  ' '.join('%s%d@%.1f' % (k, n, t - t_exec) for t, k, n in ev[:14])))
        print('stdout %.1f' % ((stdout or t_exec) - t_exec))
    out = ['start->connect1 %.1f' % (conns[0]['t_connect'] - t_exec) if conns else 'no connection']
    for i, c in enumerate(conns[:2]):
        w = c['writes']
        if len(w) < 3:
            out.append('conn%d: %d writes' % (i + 1, len(w)))
            continue
        rq = w[2][0]
        ans = [t for t, n in c['reads'] if t > rq]
        out.append('c%d tls+req %.1f' % (i + 1, rq - c['t_connect']))
        if ans:
            out.append('c%d answer %.1f' % (i + 1, ans[0] - rq))
            if i == 0 and len(conns) > 1:
                out.append('gap %.1f' % (conns[1]['t_connect'] - ans[0]))
            if i == 1 and stdout:
                out.append('101->out %.1f' % (stdout - ans[0]))
    if stdout:
        out.append('first-out %.1f' % (stdout - t_exec))
    print('  '.join(out))


if __name__ == '__main__':
    main()
