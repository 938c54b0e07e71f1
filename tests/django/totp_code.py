#!/usr/bin/env python3
"""TOTP codes from pyotp 2.12.0, for the tests of latchkey's second factor:
the tests never compute a code with latchkey's own TOTP, they ask this.

    totp_code.py (--base32 SECRET | --hex KEY | --uri URL)
                 [--digits 6] [--step 30] [--t0 0]
                 [--at UNIX ...] [--counter N ...]
    totp_code.py --parse-uri URL

A secret is given as stored: base32 (allauth's `secret`, an otpauth URL's;
padding optional) or hex (django-otp's `key`), or as an otpauth:// URL
parsed by `pyotp.parse_uri` (its digits and period then apply). Prints a
JSON list, one entry per --at then per --counter:
    {"at": UNIX or null, "counter": N, "step_start": t0 + N * step, "code": "..."}
where N counts steps from t0 (django-otp's `t`, `last_t`'s unit). Times are
explicit so that a test picks its step and keeps away from its boundaries.

--parse-uri prints what pyotp reads from the URL (so a test checks that
pyotp accepts latchkey's `otpauth_url`, and what it reads there):
    {"type", "name", "issuer", "secret", "secret_hex", "digits", "period",
     "digest"}
and exits 1 with {"error": "..."} when pyotp refuses the URL.

pyotp refuses keys under 112 bits (django-otp accepts them): such a key
exits 1 with pyotp's message. A step over 120 s (pyotp's TOTP limit; django-
otp allows more) is computed as pyotp's HOTP at the step counter.
"""

import argparse
import base64
import binascii
import json
import sys

import pyotp


def otp_for(secret_base32, digits, step):
    """The pyotp object that computes codes at a step counter."""
    if step <= 120:
        return pyotp.TOTP(secret_base32, digits=digits, interval=step)
    return pyotp.HOTP(secret_base32, digits=digits)


def codes(secret_base32, digits=6, step=30, t0=0, at=(), counters=()):
    """Codes at Unix times `at`, then at step counters `counters` (counted
    from t0), as the list the command prints."""
    otp = otp_for(secret_base32, digits, step)
    otp.byte_secret()  # pyotp's own key checks, before any code
    out = []
    for when in at:
        if isinstance(otp, pyotp.TOTP):
            counter = otp.timecode(when - t0)
        else:
            counter = int((when - t0) // step)
        out.append({'at': when, 'counter': counter})
    out += [{'at': None, 'counter': n} for n in counters]
    for entry in out:
        entry['step_start'] = t0 + entry['counter'] * step
        entry['code'] = otp.generate_otp(entry['counter'])
    return out


def hex_to_base32(key_hex):
    """django-otp's hex key as the base32 an authenticator app is given."""
    return base64.b32encode(binascii.unhexlify(key_hex)).decode().rstrip('=')


def parse_uri(url):
    """What pyotp reads from an otpauth:// URL."""
    otp = pyotp.parse_uri(url)
    return {
        'type': 'totp' if isinstance(otp, pyotp.TOTP) else 'hotp',
        'name': otp.name,
        'issuer': otp.issuer,
        'secret': otp.secret,
        'secret_hex': otp.byte_secret().hex(),
        'digits': otp.digits,
        'period': getattr(otp, 'interval', None),
        'digest': otp.digest().name,
    }


def number(text):
    value = float(text)
    return int(value) if value.is_integer() else value


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    secret = parser.add_mutually_exclusive_group(required=True)
    secret.add_argument('--base32')
    secret.add_argument('--hex')
    secret.add_argument('--uri', help='an otpauth:// URL (its digits and period apply)')
    secret.add_argument('--parse-uri', metavar='URL', help='print what pyotp reads from URL')
    parser.add_argument('--digits', type=int, default=6)
    parser.add_argument('--step', type=int, default=30)
    parser.add_argument('--t0', type=int, default=0)
    parser.add_argument('--at', type=number, action='append', default=[], metavar='UNIX')
    parser.add_argument('--counter', type=int, action='append', default=[], metavar='N')
    args = parser.parse_args()

    try:
        if args.parse_uri is not None:
            print(json.dumps(parse_uri(args.parse_uri)))
            return
        digits, step = args.digits, args.step
        if args.uri is not None:
            parsed = parse_uri(args.uri)
            if parsed['type'] != 'totp':
                raise ValueError('not a TOTP URL')
            secret_base32, digits, step = parsed['secret'], parsed['digits'], parsed['period']
        elif args.hex is not None:
            secret_base32 = hex_to_base32(args.hex)
        else:
            secret_base32 = args.base32
        if not args.at and not args.counter:
            parser.error('give --at and/or --counter')
        print(json.dumps(codes(secret_base32, digits, step, args.t0, args.at, args.counter)))
    except (ValueError, TypeError, binascii.Error) as error:
        print(json.dumps({'error': str(error)}))
        sys.exit(1)


if __name__ == '__main__':
    main()
