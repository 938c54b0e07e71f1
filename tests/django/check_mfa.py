#!/usr/bin/env python3
"""Checks that what make_django_db.py printed about second factors is what
the libraries themselves accept: codes computed by pyotp (totp_code.py) from
the printed secret, digits, step and t0 are accepted by django-otp's
`TOTPDevice.verify_token` and allauth's `validate_totp_code` and
`TOTP.validate_code` at the times they were computed for, and refused one
step beyond the tolerance; a device's code of its `last_t` step is refused
and the next step's accepted; every unused static token and recovery code is
accepted (`StaticDevice.verify_token`, `RecoveryCodes.validate_code`) and
every used one refused; django-otp's `config_url` parses with
`pyotp.parse_uri` to the device's key, digits and step.

    make_django_db.py --sqlite PATH --scenario mfa > made.json
    check_mfa.py --sqlite PATH < made.json

Each check runs in a transaction that is rolled back (and allauth's cache
of used codes is cleared), so the database is left as it was made and the
checks do not depend on one another. The libraries' clocks are set to the
chosen times. Prints {"checks": N, "failures": [...]} and exits 1 when any
check failed.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument('--sqlite', metavar='PATH')
    target.add_argument('--postgres', metavar='URL')
    args = parser.parse_args()
    if args.sqlite:
        os.environ['LATCHKEY_DJANGO_SQLITE'] = str(Path(args.sqlite).resolve())
    else:
        os.environ['LATCHKEY_DJANGO_POSTGRES'] = args.postgres
    os.environ['LATCHKEY_DJANGO_MFA'] = '1'
    os.environ['DJANGO_SETTINGS_MODULE'] = 'latchkey_django.settings'
    sys.path.insert(0, str(HERE))
    made = json.load(sys.stdin)

    import django
    django.setup()

    checks = Checks()
    for user in made['second_factors']:
        for device in user['otp_totp']:
            check_otp_totp(checks, user, device)
        for device in user['otp_static']:
            check_otp_static(checks, user, device)
        if user['allauth_totp']:
            check_allauth_totp(checks, user, user['allauth_totp'])
        if user['allauth_recovery_codes']:
            check_allauth_recovery_codes(checks, user, user['allauth_recovery_codes'])
    print(json.dumps({'checks': checks.count, 'failures': checks.failures}, indent=1))
    sys.exit(1 if checks.failures else 0)


class Checks:
    def __init__(self):
        self.count = 0
        self.failures = []

    def expect(self, what, got, want):
        self.count += 1
        if got != want:
            self.failures.append({'check': what, 'got': got, 'want': want})


def rolled_back(action):
    """`action()`'s answer, with whatever it wrote rolled back."""
    from django.core.cache import cache
    from django.db import transaction

    cache.clear()
    with transaction.atomic():
        answer = action()
        transaction.set_rollback(True)
    return answer


def check_otp_totp(checks, user, d):
    import django_otp.plugins.otp_totp.models as totp_models
    from django_otp.plugins.otp_totp.models import TOTPDevice

    import totp_code
    from make_django_db import at_time

    name = f"{user['email']} otp_totp {d['id']}"
    step, t0 = d['step'], d['t0']

    def accepts(code, when):
        def verify():
            device = TOTPDevice.objects.get(pk=d['id'])
            with at_time(totp_models, when):
                return device.verify_token(code)
        return rolled_back(verify)

    def code_at(when):
        return totp_code.codes(d['secret_base32'], d['digits'], step, t0, at=[when])[0]['code']

    parsed = totp_code.parse_uri(d['config_url'])
    checks.expect(f'{name}: config_url', (parsed['secret_hex'], parsed['digits'], parsed['period']),
                  (d['key'], d['digits'], step))
    # After its last step, at the start, middle and last second of steps.
    base = max(int(time.time()), (d['last_step_start'] or 0) + 2 * step)
    start = base - (base - t0) % step
    for when in (start, start + step // 2, start + step - 1, start + 7 * step + 1):
        checks.expect(f'{name}: pyotp code at {when}', accepts(code_at(when), when), True)
        outside = when + (d['tolerance'] + 1) * step
        checks.expect(f'{name}: code {d["tolerance"] + 1} steps ahead at {when}',
                      accepts(code_at(outside), when), False)
    if d['last_t'] >= 0:
        used = d['last_step_start']
        checks.expect(f'{name}: code of last_t at its step', accepts(code_at(used), used + 1), False)
        checks.expect(f'{name}: the accepted code again', accepts(d['accepted']['code'], d['accepted']['at']), False)
        checks.expect(f'{name}: code of last_t + 1', accepts(code_at(used + step), used + step), True)


def check_otp_static(checks, user, d):
    from django_otp.plugins.otp_static.models import StaticDevice

    for token in d['tokens']:
        accepted = rolled_back(lambda: StaticDevice.objects.get(pk=d['id']).verify_token(token['token']))
        checks.expect(f"{user['email']} static {token['token']} (used: {token['used']})",
                      accepted, not token['used'])


def check_allauth_totp(checks, user, a):
    import allauth.mfa.totp.internal.auth as totp_auth
    from allauth.mfa.models import Authenticator
    from allauth.mfa.totp.internal.auth import TOTP, validate_totp_code

    import totp_code
    from make_django_db import at_time

    name = f"{user['email']} allauth totp"
    period = a['period']

    def code_at(when):
        return totp_code.codes(a['secret'], a['digits'], period, 0, at=[when])[0]['code']

    def accepts(code, when):
        def validate():
            with at_time(totp_auth, when):
                plain = validate_totp_code(a['secret'], code)
                through = TOTP(Authenticator.objects.get(pk=a['id'])).validate_code(code)
            return plain, through
        return rolled_back(validate)

    now = int(time.time())
    start = now - now % period
    for when in (start, start + period - 1, start + 11 * period + 3):
        checks.expect(f'{name}: pyotp code at {when}', accepts(code_at(when), when), (True, True))
        # allauth's tolerance is 0: the next step's code is refused.
        checks.expect(f'{name}: next step at {when}', accepts(code_at(when + period), when),
                      (False, False))


def check_allauth_recovery_codes(checks, user, a):
    from allauth.mfa.models import Authenticator
    from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes

    def row():
        return Authenticator.objects.get(pk=a['id'])

    checks.expect(f"{user['email']} allauth unused codes", RecoveryCodes(row()).get_unused_codes(),
                  a['unused'])
    for code in a['codes']:
        accepted = rolled_back(lambda: RecoveryCodes(row()).validate_code(code))
        checks.expect(f"{user['email']} allauth code {code}", accepted, code not in a['used'])


if __name__ == '__main__':
    main()
