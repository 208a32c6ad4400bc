#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""vtmem-top against live members of a pool in a temporary directory.

    vtmem-top.py VTMEM_TOP LEDGER_MEMBER

Creates a pool with `vtmem-top create`, starts three ledger-member
processes (weights 100/100/200; one id with '"' and '\\' in it) and checks
`--json -d 0` and `-d 1` (ids, weights, caps, rates where a member stores,
the grants within the total), that `set --total` and `set ID --weight/--cap`
show in the next `--json`, that a SIGKILLed member leaves the list, the
errors' exit codes and messages, and two live tables when stdout is no
terminal.  Nothing here asserts a time: waits are polls with a bound.
"""
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

MiB = 1 << 20
STALE_MS = 1000

TOP, MEMBER = sys.argv[1], sys.argv[2]
TMP = tempfile.mkdtemp(prefix='vtmem-top-')
DIR = os.path.join(TMP, 'ledgers')
POOL = 'p1'
procs = []

# id: (vm, weight, cap, held, stores per tick)
MEMBERS = {
    'tmem-a': ('vm-a', 100, 0, 16 * MiB, 50),
    'tmem-b': ('vm-b', 100, 128 * MiB, 8 * MiB, 0),
    'tmem-"c\\': ('vm "c"', 200, 0, 32 * MiB, 10),
}


def fail(msg):
    print('FAIL: ' + msg, file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def top(*args, env=None):
    return subprocess.run([TOP, *args], capture_output=True, text=True,
                          timeout=60, env=env)


def top_ok(*args):
    r = top('--dir', DIR, *args)
    check(r.returncode == 0, f'vtmem-top {" ".join(args)}: exit '
          f'{r.returncode}: {r.stderr.strip()}')
    return r.stdout


def snapshot(delay='0'):
    out = top_ok('--json', '-d', delay)
    try:
        return json.loads(out)
    except ValueError as e:
        fail(f'--json -d {delay} is no JSON ({e}): {out!r}')


def devices(snap):
    return {d['id']: d for d in snap['devices']}


def poll(what, pred, bound):
    """pred() until it is true, for at most `bound` seconds."""
    end = time.monotonic() + bound
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            fail(f'{what}: not within {bound} s')
        time.sleep(0.1)


def start_member(ident):
    vm, weight, cap, held, stores = MEMBERS[ident]
    p = subprocess.Popen([MEMBER, DIR, POOL, ident, vm, str(weight),
                          str(cap), str(held), str(stores)],
                         stdout=subprocess.PIPE, text=True)
    procs.append(p)
    ready, _, _ = select.select([p.stdout], [], [], 30)
    line = p.stdout.readline() if ready else ''
    check(line == 'joined\n', f'member {ident} did not join: {line!r}')
    return p


def test_create():
    top_ok('create', POOL, '--total', '512M', '--stale-ms', str(STALE_MS))
    r = top('--dir', DIR, 'create', POOL, '--total', '1G')
    check(r.returncode == 1 and 'exists' in r.stderr and POOL in r.stderr,
          f'create of an existing pool: {r.returncode} {r.stderr!r}')
    top_ok('create', POOL, '--total', '1G', '--exist-ok')
    top_ok('create', 'p2', '--total', '1.5G')
    top_ok('create', 'p3', '--total', '1048576')
    pools = {p['name']: p for p in snapshot()['pools']}
    check(pools[POOL]['total'] == 512 * MiB, f'total of 512M: {pools}')
    check(pools['p2']['total'] == 1536 * MiB, f'total of 1.5G: {pools}')
    check(pools['p3']['total'] == 1048576, f'total of 1048576: {pools}')
    env = dict(os.environ, VTMEM_LEDGER_DIR=DIR)
    r = top('--json', '-d', '0', '--pool', 'p3', env=env)
    check(r.returncode == 0 and json.loads(r.stdout)['pools'][0]['name']
          == 'p3', f'$VTMEM_LEDGER_DIR not used: {r.stderr!r}')


def check_devices(snap):
    devs = devices(snap)
    check(set(devs) == set(MEMBERS), f'ids {sorted(devs)}')
    for ident, (vm, weight, cap, held, _) in MEMBERS.items():
        d = devs[ident]
        check(d['pool'] == POOL and d['vm'] == vm, f'{ident}: {d}')
        check(d['weight'] == weight, f'{ident}: weight {d["weight"]}')
        check(d['cap'] == (cap or None), f'{ident}: cap {d["cap"]}')
        check(d['held'] == held and d['stored_pages'] == held // 4096,
              f'{ident}: held {d["held"]}')
        check(d['ratio'] == 2.0, f'{ident}: ratio {d["ratio"]}')
    pool = [p for p in snap['pools'] if p['name'] == POOL][0]
    grants = sum(d['grant'] for d in snap['devices'] if d['pool'] == POOL)
    check(grants <= pool['total'] and grants == pool['granted'],
          f'grants {grants}, pool {pool}')
    check(pool['members'] == 3, f'pool {pool}')


def test_json():
    for ident in MEMBERS:
        start_member(ident)
    snap = poll('three devices listed',
                lambda: (lambda s: len(s['devices']) == 3 and s)(snapshot()),
                10)
    check_devices(snap)
    check(all(d['stores_per_s'] is None for d in snap['devices']),
          '-d 0 has rates')
    snap = snapshot('1')
    check_devices(snap)
    for ident, d in devices(snap).items():
        stores = MEMBERS[ident][4]
        rate = d['stores_per_s']
        check(rate is not None and (rate > 0) == (stores > 0),
              f'{ident}: stores_per_s {rate} storing {stores} a tick')
        check(d['rejects_per_s'] == 0, f'{ident}: {d["rejects_per_s"]}')


def test_set():
    top_ok('set', POOL, '--total', '1G')
    check(snapshot()['pools'][0]['total'] == 1 << 30, 'set --total 1G')
    top_ok('set', POOL, 'tmem-b', '--weight', '300')
    top_ok('set', POOL, 'tmem-b', '--cap', 'none')
    top_ok('set', POOL, 'tmem-a', '--cap', '64M')
    devs = devices(snapshot())
    check(devs['tmem-b']['weight'] == 300 and devs['tmem-b']['cap'] is None,
          f'set tmem-b: {devs["tmem-b"]}')
    check(devs['tmem-a']['cap'] == 64 * MiB and
          devs['tmem-a']['grant'] <= 64 * MiB, f'set tmem-a: {devs["tmem-a"]}')
    MEMBERS['tmem-b'] = ('vm-b', 300, 0) + MEMBERS['tmem-b'][3:]
    MEMBERS['tmem-a'] = ('vm-a', 100, 64 * MiB) + MEMBERS['tmem-a'][3:]


def test_live():
    r = top('--dir', DIR, '--pool', POOL, '-n', '2', '-d', '0.2')
    check(r.returncode == 0, f'live: {r.returncode} {r.stderr!r}')
    check('\x1b' not in r.stdout, 'escape codes on a pipe')
    tables = r.stdout.split('vtmem-top - ')[1:]
    check(len(tables) == 2, f'{len(tables)} tables: {r.stdout!r}')
    for t in tables:
        check('pool p1: total 1G' in t and '\nPOOL ' in t, f'table {t!r}')
        for ident in MEMBERS:
            check(re.search('^p1 +' + re.escape(ident) + ' ', t, re.M),
                  f'no row of {ident} in {t!r}')
    r = top('--dir', DIR, '--pool', POOL, '-n', '1', '--bytes')
    check(f'total {1 << 30},' in r.stdout, f'--bytes: {r.stdout!r}')


def test_killed():
    victim = procs[2]
    victim.kill()
    victim.wait()
    poll('the killed member reaped',
         lambda: len(snapshot()['devices']) == 2, STALE_MS / 1000 + 10)
    check('tmem-"c\\' not in devices(snapshot()), 'killed member listed')


def test_errors():
    r = top('--dir', DIR, '--pool', 'nosuch', '--json')
    check(r.returncode == 1 and 'nosuch' in r.stderr and
          r.stderr.count('\n') == 1, f'missing pool: {r.returncode} '
          f'{r.stderr!r}')
    r = top('--dir', DIR, 'set', 'nosuch', '--total', '1G')
    check(r.returncode == 1 and 'nosuch' in r.stderr, f'{r.stderr!r}')
    r = top('--dir', DIR, 'set', POOL, 'nosuch-id', '--weight', '5')
    check(r.returncode == 1 and 'nosuch-id' in r.stderr, f'{r.stderr!r}')
    for args in (['create', 'x', '--total', '12Q'],
                 ['create', 'x', '--total', '1G5'],
                 ['create', 'x', '--total', '17179869185G'],
                 ['set', POOL, 'tmem-a', '--cap',
                  '16777215.99999999999999999T'],
                 ['create', 'x', '--total', '0'],
                 ['set', POOL, '--total', '1.5'],
                 ['set', POOL, 'tmem-a', '--cap', '-1'],
                 ['set', POOL, 'tmem-a', '--weight', '0'],
                 ['set', POOL, 'tmem-a'],
                 ['-d', '-1'], ['-n', '0'], ['--frob'], ['frob']):
        r = top('--dir', DIR, *args)
        check(r.returncode == 2 and 'usage:' in r.stderr,
              f'{args}: exit {r.returncode}, {r.stderr!r}')
    r = top('--dir', os.path.join(TMP, 'none'), '--json')
    check(r.returncode == 1 and 'none' in r.stderr, f'no dir: {r.stderr!r}')


def test_help():
    r = top('--help')
    check(r.returncode == 0, '--help')
    for word in ('--dir', '--pool', '-d', '-n', '--bytes', '--json',
                 'create', '--total', '--stale-ms', '--exist-ok', 'set',
                 '--weight', '--cap', 'host-pool=', 'weight=', 'budget='):
        check(word in r.stdout, f'--help does not say {word}')


def test_leave():
    for p in procs[:2]:
        p.terminate()
        check(p.wait(timeout=30) == 0, 'member exit on SIGTERM')
    check(snapshot()['devices'] == [], 'members that left still listed')


def main():
    try:
        test_help()
        test_create()
        test_json()
        test_set()
        test_live()
        test_killed()
        test_errors()
        test_leave()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(TMP, ignore_errors=True)
    print('vtmem-top: all checks passed')


main()
