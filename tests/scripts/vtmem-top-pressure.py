#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""vtmem-top and a pool's memory-pressure mode, with a synthetic PSI file.

    vtmem-top-pressure.py VTMEM_TOP LEDGER_MEMBER

Creates a pool, shows it with the mode off, turns it on with
`set --pressure FILE --pressure-period 100 --pressure-grow 20` for a PSI
file in a temporary directory, joins two ledger-member processes, then
advances the file's "some" total as fast as the wall clock (a stall of
100% of the time): the effective total must shrink (decision shrink,
shrinks > 0, down to the 25% floor, never below it, the grants within
it).  With the file still, it must grow back to the configured total
(decision grow).  `set --pressure off` under pressure restores the
configured total at once.  Then the refusals: a missing source, a
directory, a file without a PSI line (exit 1, naming the pool and the
source), numbers out of range and bad combinations (exit 2).  Waits are
polls with a bound; no check is of a time.
"""
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time

MiB = 1 << 20
TOTAL = 256 * MiB
FLOOR = TOTAL * 25 // 100

TOP, MEMBER = sys.argv[1], sys.argv[2]
TMP = tempfile.mkdtemp(prefix='vtmem-top-pressure-')
DIR = os.path.join(TMP, 'ledgers')
PSI = os.path.join(TMP, 'memory.pressure')
POOL = 'pp'
procs = []


def fail(msg):
    print('FAIL: ' + msg, file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def top(*args):
    return subprocess.run([TOP, '--dir', DIR, *args], capture_output=True,
                          text=True, timeout=60)


def top_ok(*args):
    r = top(*args)
    check(r.returncode == 0, f'vtmem-top {" ".join(args)}: exit '
          f'{r.returncode}: {r.stderr.strip()}')
    return r.stdout


def pool_snap():
    """(the pool's object, the sum of its devices' grants) of one --json."""
    out = top_ok('--json', '-d', '0', '--pool', POOL)
    try:
        snap = json.loads(out)
    except ValueError as e:
        fail(f'--json is no JSON ({e}): {out!r}')
    pool = snap['pools'][0]
    grants = sum(d['grant'] for d in snap['devices'])
    # Whatever the mode does: the grants within the effective total, the
    # effective total between the floor and the configured one.
    check(grants <= pool['total'], f'grants {grants} above {pool}')
    check(pool['configured'] == TOTAL, f'configured: {pool}')
    if pool['pressure'] is not None:
        check(FLOOR <= pool['total'] <= TOTAL, f'total off bounds: {pool}')
    else:
        check(pool['total'] == TOTAL, f'off, total not configured: {pool}')
    return pool, grants


def poll(what, pred, bound=10):
    """pred() until it returns something true, for at most `bound` s."""
    end = time.monotonic() + bound
    last = None
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            fail(f'{what}: not within {bound} s; last {last}')
        last = pool_snap()[0]
        time.sleep(0.05)


def write_psi(some_us):
    """The kernel's format; replaced whole, so no reader sees half."""
    tmp = PSI + '.new'
    with open(tmp, 'w') as f:
        f.write(f'some avg10=0.00 avg60=0.00 avg300=0.00 total={some_us}\n'
                f'full avg10=0.00 avg60=0.00 avg300=0.00 '
                f'total={some_us // 2}\n')
    os.replace(tmp, PSI)


class Stall:
    """While on, the file's total advances as the clock: 100% stalled."""

    def __init__(self):
        self.us = 1000
        self.on = threading.Event()
        self.quit = False
        write_psi(self.us)
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        last = time.monotonic()
        while not self.quit:
            now = time.monotonic()
            if self.on.is_set():
                self.us += int((now - last) * 1e6)
                write_psi(self.us)
            last = now
            time.sleep(0.01)


def start_member(ident, weight, held):
    p = subprocess.Popen([MEMBER, DIR, POOL, ident, 'vm-' + ident,
                          str(weight), '0', str(held), '1'],
                         stdout=subprocess.PIPE, text=True)
    procs.append(p)
    ready, _, _ = select.select([p.stdout], [], [], 30)
    line = p.stdout.readline() if ready else ''
    check(line == 'joined\n', f'member {ident} did not join: {line!r}')


def table_line():
    out = top_ok('-n', '1', '--pool', POOL, '--bytes')
    lines = [ln for ln in out.splitlines() if ln.startswith('pool ' + POOL)]
    check(len(lines) == 1, f'no pool line: {out!r}')
    return lines[0]


def test_off():
    top_ok('create', POOL, '--total', '256M', '--stale-ms', '1000')
    pool, _ = pool_snap()
    check(pool['pressure'] is None, f'a new pool under pressure: {pool}')
    line = table_line()
    check(line.endswith(', pressure off') and
          f'configured {TOTAL},' in line, f'off: {line!r}')


def test_on(stall):
    top_ok('set', POOL, '--pressure', PSI, '--pressure-period', '100',
           '--pressure-grow', '20')
    p = pool_snap()[0]['pressure']
    check(p is not None and p['source'] == PSI, f'on: {p}')
    want = {'period_ms': 100, 'high_ppm': 10000, 'low_ppm': 1000,
            'shrink_pct': 10, 'grow_pct': 20, 'calm_periods': 3,
            'min_pct': 25, 'shrinks': 0, 'grows': 0, 'errors': 0,
            'errno': 0}
    check(all(p[k] == v for k, v in want.items()), f'settings: {p}')
    check(p['decision'] in ('none', 'hold', 'grow'), f'decision: {p}')
    start_member('m1', 100, 48 * MiB)
    start_member('m2', 200, 96 * MiB)
    poll('grants of the members', lambda: pool_snap()[1] > 100 * MiB)


def test_shrink(stall):
    stall.on.set()

    def shrunk():
        pool, grants = pool_snap()
        p = pool['pressure']
        return (pool['total'] < TOTAL and p['decision'] == 'shrink' and
                p['shrinks'] > 0 and p['ppm'] > p['high_ppm'] and
                (pool, grants))
    pool, grants = poll('the total shrinking under a stall', shrunk)
    check(grants <= pool['total'], f'grants {grants} above {pool}')
    line = table_line()
    check(re.search(r', pressure ' + re.escape(PSI) +
                    r' \d+\.\d\d% (shrink|hold) \(shrinks [1-9]\d*, '
                    r'grows \d+\)$', line), f'table: {line!r}')
    check(line.startswith(f'pool {POOL}: total ') and
          f'configured {TOTAL},' in line, f'table: {line!r}')
    pool = poll('the total at its floor',
                lambda: (lambda q: q['total'] == FLOOR and q)(pool_snap()[0]))
    # At the floor it holds: still a stall, no shrink below it.
    check(pool['pressure']['decision'] in ('hold', 'shrink'), f'{pool}')


def test_grow(stall):
    stall.on.clear()
    shrinks = pool_snap()[0]['pressure']['shrinks']
    poll('decision grow once the stall stopped',
         lambda: pool_snap()[0]['pressure']['decision'] == 'grow')
    pool = poll('the total back to the configured one',
                lambda: (lambda q: q['total'] == TOTAL and q)(pool_snap()[0]))
    p = pool['pressure']
    check(p['grows'] > 0 and p['shrinks'] == shrinks, f'grown: {p}')


def test_off_under_pressure(stall):
    stall.on.set()
    poll('the total shrinking again',
         lambda: pool_snap()[0]['total'] < TOTAL)
    top_ok('set', POOL, '--pressure', 'off')
    stall.on.clear()
    pool, grants = pool_snap()
    check(pool['pressure'] is None and pool['total'] == TOTAL,
          f'off: {pool}')
    check(table_line().endswith(', pressure off'), 'table: not off')


def test_errors():
    junk = os.path.join(TMP, 'junk')
    with open(junk, 'w') as f:
        f.write('full avg10=0.00 avg60=0.00 avg300=0.00 total=5\n')
    missing = os.path.join(TMP, 'no-such-psi')
    for src, words in ((missing, 'no such file'),
                       (TMP, 'directory'),
                       (junk, "PSI 'some")):
        r = top('set', POOL, '--pressure', src)
        check(r.returncode == 1 and r.stderr.count('\n') == 1 and
              f'pool {POOL} ' in r.stderr and src in r.stderr and
              words in r.stderr, f'{src}: {r.returncode} {r.stderr!r}')
    r = top('set', 'nosuch', '--pressure', PSI)
    check(r.returncode == 1 and 'nosuch' in r.stderr, f'{r.stderr!r}')
    for args, words in (
            (['--pressure', PSI, '--pressure-high', '2000000'],
             '--pressure-high'),
            (['--pressure', PSI, '--pressure-period', '99'],
             '--pressure-period'),
            (['--pressure', PSI, '--pressure-min', '101'], '--pressure-min'),
            (['--pressure', PSI, '--pressure-calm', '0'], '--pressure-calm'),
            (['--pressure', PSI, '--pressure-low', '20000'],
             '--pressure-low 20000 above'),
            (['--pressure', 'relative/psi'], 'absolute'),
            (['--pressure', '/' + 'x' * 300], '255'),
            (['--pressure', 'off', '--pressure-grow', '5'], 'not off'),
            (['--pressure-high', '5'], 'set:'),
            (['m1', '--pressure', PSI], 'set:')):
        r = top('set', POOL, *args)
        check(r.returncode == 2 and words in r.stderr.splitlines()[0] and
              'usage:' in r.stderr, f'{args}: {r.returncode} {r.stderr!r}')
    r = top('create', 'x', '--total', '1G', '--pressure', PSI)
    check(r.returncode == 2, f'create --pressure: {r.returncode}')
    # Nothing changed by a refusal.
    check(pool_snap()[0]['pressure'] is None, 'a refusal turned it on')


def test_psi():
    r = top('set', POOL, '--pressure', 'psi')
    if os.path.isfile('/proc/pressure/memory'):
        check(r.returncode == 0, f'psi: {r.stderr!r}')
        p = pool_snap()[0]['pressure']
        check(p and p['source'] == '/proc/pressure/memory', f'psi: {p}')
        top_ok('set', POOL, '--pressure', 'off')
    else:
        check(r.returncode == 1 and '/proc/pressure/memory' in r.stderr,
              f'psi without PSI: {r.stderr!r}')


def test_help():
    r = subprocess.run([TOP, '--help'], capture_output=True, text=True)
    for word in ('--pressure SOURCE', 'psi', '--pressure off',
                 '--pressure-high', '--pressure-low', '--pressure-period',
                 '--pressure-shrink', '--pressure-grow', '--pressure-calm',
                 '--pressure-min', '"decision"', 'configured'):
        check(word in r.stdout, f'--help does not say {word}')


def main():
    stall = None
    try:
        test_help()
        test_off()
        stall = Stall()
        test_on(stall)
        test_shrink(stall)
        test_grow(stall)
        test_off_under_pressure(stall)
        test_errors()
        test_psi()
    finally:
        if stall:
            stall.quit = True
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait()
        shutil.rmtree(TMP, ignore_errors=True)
    print('vtmem-top-pressure: all checks passed')


main()
