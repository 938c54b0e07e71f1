#!/usr/bin/env python3
"""Builds a Django database with the REAL Django (5.2 + simplejwt) of the
test project beside this script (the seed's `user` app, see
latchkey_django/settings.py), for the tests of `latchkey import-django`.

    make_django_db.py (--sqlite PATH | --postgres URL) [--no-blacklist] [--mfa] [--social]
                      [--scenario standard | mfa | social | --spec | --migrate-only]

It runs the project's migrations against the database (plus simplejwt's
blacklist app unless --no-blacklist, plus django-otp's and allauth's with
--mfa), then either creates a fixed scenario (`standard` by default) or
applies the JSON spec read from stdin (--spec), through Django's ORM: users
by `create_user`/`create_superuser` or a plain `save()` (for rows the
manager refuses, like an empty email), hashes by `make_password(...,
hasher=...)` with every stock hasher (low work factors, see
latchkey_django/hashers.py), refresh/access tokens by simplejwt's
`RefreshToken.for_user`, blacklisting by `token.blacklist()`.
It prints what it made as JSON on stdout.

Second factors (issue 22) need the apps of --mfa; `--scenario mfa` and a
spec with any of the otp_*/allauth_* keys turn it on. Without it the
database has exactly the tables it had before these apps existed here. They
are made by the libraries' own APIs, never by writing their rows:
django-otp's `TOTPDevice`/`StaticDevice`/`StaticToken` models, a code
accepted by `TOTPDevice.verify_token` (which sets `last_t` and `drift`) and
a static token used by `StaticDevice.verify_token` (which deletes it);
allauth's `TOTP.activate(user, secret)` and `RecoveryCodes.activate(user)`
(allauth.mfa.totp.internal.auth, allauth.mfa.recovery_codes.internal.auth),
codes used by `RecoveryCodes(...).validate_code`. The codes given to
`verify_token` are pyotp's (totp_code.py), at the real time unless the spec
names one (then the library's clock is set to it).

Social accounts (issue 23) need the apps of --social (allauth's
socialaccount with its google, github, apple and openid_connect providers);
`--scenario social` and a spec with social_apps/social_accounts turn it on.
Apps are `SocialApp` rows made by the ORM (that is how an operator adds
them, in the admin); accounts are made as allauth makes them at a login:
the provider that `get_adapter().get_provider(request, provider)` finds
(for an OpenID Connect app, by its `provider_id`) turns the provider's
response into a `SocialLogin` (`sociallogin_from_response`: allauth's own
uid and `provider` naming), which `connect(request, user)` saves for the
user. A `date_joined` in the spec is then set with `update()` (allauth's
`auto_now_add` stamps the real time), so that links made years ago can be
checked to the microsecond.

Spec (every key optional, applied in this order):
  {"users": [{"email", "password", "hasher", "staff", "superuser", "active",
              "raw": true (save() without the manager), "unusable": true,
              "hash": "<stored as the password column, as is>"}],
   "set_password": [{"email", "password", "hasher"}],
   "tokens": [{"email", "blacklist": bool, "expired": bool}],
   "blacklist": ["<jti>", ...],
   "groups": [{"email", "group"}],
   "permissions": [{"email", "codename"}],
   "delete_tokens": true (empties the blacklist tables),
   "otp_totp": [{"email", "name", "key": "<hex, default django-otp's random
                 20 bytes>", "digits", "step", "t0", "tolerance", "drift",
                 "confirmed" (default true),
                 "verify": true | <Unix time> (one pyotp code accepted by
                 verify_token, now or at that time)}],
   "otp_static": [{"email", "name", "confirmed", "tokens": ["..."] (default
                   "count" (5) of StaticToken.random_token()),
                   "use": [<index>, ...] (used by verify_token)}],
   "allauth_totp": [{"email", "secret": "<base32, default allauth's
                     generate_totp_secret()>"}],
   "allauth_recovery_codes": [{"email", "use": [<index>, ...] (of the codes,
                               used by validate_code), "migrated_codes":
                               ["..."] (stored as allauth's data
                               "migrated_codes" instead of a seed)}],
   "social_apps": [{"provider", "provider_id", "name", "client_id", "secret",
                    "key", "settings"}],
   "social_accounts": [{"email", "provider" (the app's provider_id, else its
                        provider), "data": {the provider's response},
                        "date_joined": "<ISO 8601 instant>"}]}

With --mfa the output has "second_factors": one entry per user that has any,
{"user_id", "email", "otp_totp": [device], "otp_static": [device],
"allauth_totp": {...} or null, "allauth_recovery_codes": {...} or null}:
  TOTP device: "id", "name", "confirmed", "key" (hex, as stored),
    "secret_base32" (the key as an app is given it, unpadded), "config_url"
    (django-otp's otpauth URL), "digits", "step", "t0", "tolerance",
    "drift", "last_t" (-1 or the step counter, from t0, of the last accepted
    code), "last_step_start" (t0 + last_t * step, or null), "accepted"
    ({"code", "at", "counter"} given to verify_token, or null);
  static device: "id", "name", "confirmed", "tokens": [{"token", "used"}]
    (a used token is no longer in the table: django-otp deletes it);
  allauth TOTP: "id", "secret" (base32, as allauth decrypts it), "digits",
    "period" (allauth's MFA_TOTP_DIGITS/PERIOD), "data" (the row's JSON);
  allauth recovery codes: "id", "codes" (generate_codes()), "unused"
    (get_unused_codes()), "used", "used_mask", "migrated", "data".
With --social the output has "social": {"apps": [{"id", "provider",
"provider_id", "name", "client_id", "secret", "key", "settings"}] (as stored:
the tests look for them where they must not be), "accounts": [{"id",
"user_id", "email", "provider", "uid", "date_joined" (ISO 8601, UTC, as
stored)}]}.
Run with the venv setup.sh makes: /tmp/latchkey-django-venv/bin/python.
"""

import argparse
import io
import json
import os
import sys
from contextlib import redirect_stdout
from datetime import timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent

PASSWORDS = {
    'pbkdf2_sha256': 'pbkdf2-sha256-pass-1',
    'pbkdf2_sha1': 'pbkdf2-sha1-pass-2',
    'argon2': 'argon2-pass-3',
    'bcrypt_sha256': 'bcrypt-sha256-pass-4',
    'bcrypt': 'bcrypt-pass-5',
    'scrypt': 'scrypt-pass-6',
    'md5': 'md5-pass-7',
}

STANDARD = {
    'users': [
        {'email': 'admin@example.com', 'hasher': 'pbkdf2_sha256', 'superuser': True},
        {'email': 'alice@example.com', 'hasher': 'pbkdf2_sha1'},
        {'email': '  Bob.Mixed@Example.COM ', 'hasher': 'argon2', 'raw': True},
        {'email': 'carol@example.com', 'hasher': 'bcrypt_sha256'},
        {'email': 'dave@example.com', 'hasher': 'bcrypt', 'active': False},
        {'email': 'erin@example.com', 'hasher': 'scrypt', 'staff': True},
        {'email': 'frank@example.com', 'hasher': 'md5'},
        {'email': 'ALICE@example.com', 'hasher': 'pbkdf2_sha256'},
        {'email': '', 'hasher': 'pbkdf2_sha256', 'raw': True},
        {'email': 'not-an-email', 'hasher': 'pbkdf2_sha256', 'raw': True},
        {'email': 'grace@example.com', 'unusable': True},
    ],
    'tokens': [
        {'email': 'alice@example.com'},
        {'email': 'carol@example.com'},
        {'email': 'carol@example.com', 'blacklist': True},
        {'email': 'frank@example.com', 'expired': True},
        {'email': 'ALICE@example.com'},
    ],
    'groups': [
        {'email': 'admin@example.com', 'group': 'editors'},
        {'email': 'alice@example.com', 'group': 'editors'},
    ],
    'permissions': [{'email': 'alice@example.com', 'codename': 'add_group'}],
}

# Second factors as a Django project has them (one user each, so that each
# case is logged in on its own): django-otp devices, default and not, used
# and not, confirmed and not, with static tokens; allauth's TOTP and
# recovery codes, seeded and migrated. Every user's password is
# PASSWORDS['pbkdf2_sha256'].
MFA_KEYS = ('otp_totp', 'otp_static', 'allauth_totp', 'allauth_recovery_codes')
MFA = {
    'users': [
        {'email': 'plain@example.com'},
        # A default TOTP device never used, and static tokens, one used.
        {'email': 'otp@example.com'},
        # 8 digits, 60 s, a t0 that is no multiple of the step; it accepted
        # a code, so its last_t counts 60 s steps from t0.
        {'email': 'otp8@example.com'},
        # A default device that accepted a code (a real last_t, drift 0).
        {'email': 'otp-used@example.com'},
        # A 120-bit key: django-otp takes it, totp-rs would not (pyotp does).
        {'email': 'otp-short@example.com'},
        # Only an unconfirmed device (enrolment never finished).
        {'email': 'otp-pending@example.com'},
        # allauth: TOTP and seeded recovery codes, one of them used.
        {'email': 'allauth@example.com'},
        # allauth: TOTP and migrated recovery codes, one of them used.
        {'email': 'allauth-mig@example.com'},
        # The import skips this row (no valid email): its devices go too.
        {'email': 'otp-skipped', 'raw': True},
    ],
    'otp_totp': [
        {'email': 'otp@example.com', 'name': 'phone'},
        {'email': 'otp8@example.com', 'name': 'token', 'digits': 8, 'step': 60,
         't0': 1_000_000_007, 'verify': True},
        {'email': 'otp-used@example.com', 'name': 'phone', 'verify': True},
        {'email': 'otp-short@example.com', 'name': 'old',
         'key': '0f1e2d3c4b5a69788796a5b4c3d2e1'},
        {'email': 'otp-pending@example.com', 'name': 'pending', 'confirmed': False},
        {'email': 'otp-skipped', 'name': 'phone'},
    ],
    'otp_static': [
        {'email': 'otp@example.com', 'name': 'backup', 'use': [1]},
        {'email': 'otp-skipped', 'name': 'backup'},
    ],
    'allauth_totp': [
        {'email': 'allauth@example.com'},
        {'email': 'allauth-mig@example.com'},
    ],
    'allauth_recovery_codes': [
        {'email': 'allauth@example.com', 'use': [3]},
        {'email': 'allauth-mig@example.com',
         'migrated_codes': ['q3zk7wmx', 'hf2y6rtn', 'c5vj3ka7'], 'use': [0]},
    ],
}

# Social accounts as allauth keeps them: one app per provider, each secret a
# string found nowhere else (the tests look for them in the import's output
# and in latchkey's database), Apple's private key in the app's settings as
# allauth keeps it; accounts for google, github (allauth writes its numeric
# id in decimal), apple and an OpenID Connect app whose provider_id, "corp",
# is what its accounts carry. Every user's password is
# PASSWORDS['pbkdf2_sha256'].
SOCIAL_KEYS = ('social_apps', 'social_accounts')
SOCIAL_SECRETS = {
    'google': '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-printed',
    'github': 'github-secret-0d5b8a3e91c2-never-printed',
    'apple_key_id': 'APPLEKEYID-7Q2W-never-printed',
    'apple_team': 'APPLETEAM-8R3E-never-printed',
    'apple_private_key': 'MIGTAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBHkwdwIBAQQg'
                         'apple-private-key-never-printed',
    'corp': 'corp-oidc-secret-6a7b8c9d-never-printed',
    'corp_key': 'corp-oidc-key-1e2f3a4b-never-printed',
}
SOCIAL = {
    'users': [
        # google and github
        {'email': 'ana@example.com'},
        # apple, behind Apple's private relay
        {'email': 'ben@example.com'},
        # the company's OpenID Connect provider
        {'email': 'cy@example.com'},
        # no social account
        {'email': 'dee@example.com'},
        # The import skips this row (no valid email): its account goes too.
        {'email': 'social-skipped', 'raw': True},
    ],
    'social_apps': [
        {'provider': 'google', 'name': 'Google',
         'client_id': '123456789012-latchkey.apps.googleusercontent.com',
         'secret': SOCIAL_SECRETS['google']},
        {'provider': 'github', 'name': 'GitHub', 'client_id': 'Iv1.5a7e0c3b9d2f4e61',
         'secret': SOCIAL_SECRETS['github']},
        # As allauth's documentation has it: the key id as `secret`, the
        # team id as `key`, the private key in settings.
        {'provider': 'apple', 'name': 'Apple', 'client_id': 'com.example.latchkey.web',
         'secret': SOCIAL_SECRETS['apple_key_id'], 'key': SOCIAL_SECRETS['apple_team'],
         'settings': {'certificate_key': '-----BEGIN PRIVATE KEY-----\n'
                                         + SOCIAL_SECRETS['apple_private_key']
                                         + '\n-----END PRIVATE KEY-----\n'}},
        {'provider': 'openid_connect', 'provider_id': 'corp', 'name': 'Corp SSO',
         'client_id': 'latchkey-corp-client', 'secret': SOCIAL_SECRETS['corp'],
         'key': SOCIAL_SECRETS['corp_key'],
         'settings': {'server_url': 'https://sso.corp.example',
                      'token_auth_method': 'client_secret_basic'}},
    ],
    'social_accounts': [
        {'email': 'ana@example.com', 'provider': 'google',
         'data': {'sub': '108353985647820317650', 'email': 'ana@gmail.com',
                  'email_verified': True, 'name': 'Ana'},
         'date_joined': '2021-03-04T05:06:07.123456+00:00'},
        {'email': 'ana@example.com', 'provider': 'github',
         'data': {'id': 583231, 'login': 'ana-codes', 'email': 'ana@example.com',
                  'name': 'Ana'},
         'date_joined': '2022-11-12T13:14:15.654321+00:00'},
        {'email': 'ben@example.com', 'provider': 'apple',
         'data': {'sub': '001234.6f1d2c3b4a5e46f7a8b9c0d1e2f3a4b5.0942',
                  'email': 'q7x2k9@privaterelay.appleid.com', 'email_verified': 'true'},
         'date_joined': '2023-06-07T08:09:10.000001+00:00'},
        {'email': 'cy@example.com', 'provider': 'corp',
         'data': {'userinfo': {'sub': 'cy-4b1e7d', 'email': 'cy@corp.example',
                               'email_verified': True},
                  'id_token': {'sub': 'cy-4b1e7d', 'iss': 'https://sso.corp.example'}},
         'date_joined': '2024-01-31T23:59:59.999999+00:00'},
        {'email': 'social-skipped', 'provider': 'github',
         'data': {'id': 990017, 'login': 'skipped'},
         'date_joined': '2024-02-01T00:00:00+00:00'},
    ],
}

SCENARIOS = {'standard': STANDARD, 'mfa': MFA, 'social': SOCIAL}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument('--sqlite', metavar='PATH')
    target.add_argument('--postgres', metavar='URL')
    parser.add_argument('--no-blacklist', action='store_true',
                        help="without simplejwt's token_blacklist app")
    parser.add_argument('--mfa', action='store_true',
                        help="with django-otp's and allauth's apps (second factors)")
    parser.add_argument('--social', action='store_true',
                        help="with allauth's socialaccount app and its providers")
    what = parser.add_mutually_exclusive_group()
    what.add_argument('--scenario', choices=sorted(SCENARIOS), default='standard')
    what.add_argument('--spec', action='store_true', help='read a JSON spec on stdin')
    what.add_argument('--migrate-only', action='store_true')
    args = parser.parse_args()

    if args.sqlite:
        os.environ['LATCHKEY_DJANGO_SQLITE'] = str(Path(args.sqlite).resolve())
    else:
        os.environ['LATCHKEY_DJANGO_POSTGRES'] = args.postgres
    os.environ['LATCHKEY_DJANGO_BLACKLIST'] = '0' if args.no_blacklist else '1'
    # The spec is read first: its second factors decide which apps load.
    if args.migrate_only:
        spec = {}
    elif args.spec:
        spec = json.load(sys.stdin)
    else:
        spec = SCENARIOS[args.scenario]
    mfa = args.mfa or any(key in spec for key in MFA_KEYS)
    os.environ['LATCHKEY_DJANGO_MFA'] = '1' if mfa else '0'
    social = args.social or any(key in spec for key in SOCIAL_KEYS)
    os.environ['LATCHKEY_DJANGO_SOCIAL'] = '1' if social else '0'
    os.environ['DJANGO_SETTINGS_MODULE'] = 'latchkey_django.settings'
    sys.path.insert(0, str(HERE))

    import django
    django.setup()
    from django.core.management import call_command

    with redirect_stdout(io.StringIO()):
        call_command('migrate', interactive=False, verbosity=0)
    out = apply(spec, blacklist_app=not args.no_blacklist)
    if mfa:
        out['second_factors'] = second_factors(spec)
    if social:
        out['social'] = social_accounts(spec)
    print(json.dumps(out, indent=1))


def apply(spec, blacklist_app):
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import Group, Permission
    from django.utils import timezone
    from rest_framework_simplejwt.tokens import RefreshToken

    User = get_user_model()
    out = {'secret_key': settings.SECRET_KEY, 'table': User._meta.db_table,
           'users': [], 'tokens': []}

    def user(email):
        return User.objects.get(email=email)

    for u in spec.get('users', []):
        hasher = u.get('hasher', 'pbkdf2_sha256')
        password = u.get('password') or PASSWORDS.get(hasher, 'some-password-0')
        if u.get('raw'):
            obj = User(email=u['email'])
            obj.password = make_password(password, hasher=hasher)
            obj.save()
        elif u.get('superuser'):
            obj = User.objects.create_superuser(email=u['email'], password=password)
        else:
            obj = User.objects.create_user(email=u['email'], password=password)
        if not u.get('raw'):
            obj.password = make_password(password, hasher=hasher)
        if u.get('unusable'):
            obj.set_unusable_password()
        if u.get('hash') is not None:
            obj.password = u['hash']
        obj.is_staff = bool(u.get('staff', u.get('superuser', False)))
        obj.is_superuser = bool(u.get('superuser', False))
        obj.is_active = bool(u.get('active', True))
        obj.save()
        out['users'].append({
            'id': obj.pk, 'email': obj.email, 'password': None if u.get('unusable') else password,
            'hasher': None if u.get('unusable') else hasher, 'hash': obj.password,
            'is_active': obj.is_active, 'is_staff': obj.is_staff,
            'is_superuser': obj.is_superuser,
        })

    for s in spec.get('set_password', []):
        obj = user(s['email'])
        hasher = s.get('hasher', 'pbkdf2_sha256')
        obj.password = make_password(s['password'], hasher=hasher)
        obj.save()
        out['users'].append({'id': obj.pk, 'email': obj.email, 'password': s['password'],
                             'hasher': hasher, 'hash': obj.password,
                             'is_active': obj.is_active, 'is_staff': obj.is_staff,
                             'is_superuser': obj.is_superuser})

    for t in spec.get('tokens', []):
        obj = user(t['email'])
        refresh = RefreshToken.for_user(obj)
        if t.get('expired'):
            refresh.set_exp(lifetime=-timedelta(hours=1))
            if blacklist_app:
                from rest_framework_simplejwt.token_blacklist.models import OutstandingToken
                OutstandingToken.objects.filter(jti=refresh['jti']).update(
                    expires_at=timezone.now() - timedelta(hours=1), token=str(refresh))
        access = str(refresh.access_token)
        blacklisted = bool(t.get('blacklist')) and blacklist_app
        if blacklisted:
            refresh.blacklist()
        out['tokens'].append({
            'user_id': obj.pk, 'email': obj.email, 'refresh': str(refresh), 'access': access,
            'jti': refresh['jti'], 'blacklisted': blacklisted,
            'expired': bool(t.get('expired')),
        })

    for jti in spec.get('blacklist', []):
        from rest_framework_simplejwt.token_blacklist.models import (
            BlacklistedToken, OutstandingToken)
        BlacklistedToken.objects.get_or_create(token=OutstandingToken.objects.get(jti=jti))

    for g in spec.get('groups', []):
        group, _ = Group.objects.get_or_create(name=g['group'])
        user(g['email']).groups.add(group)

    for p in spec.get('permissions', []):
        user(p['email']).user_permissions.add(Permission.objects.get(codename=p['codename']))

    if spec.get('delete_tokens'):
        from rest_framework_simplejwt.token_blacklist.models import (
            BlacklistedToken, OutstandingToken)
        BlacklistedToken.objects.all().delete()
        OutstandingToken.objects.all().delete()
    return out


def second_factors(spec):
    """Makes the spec's second factors through django-otp's and allauth's
    APIs and returns what a test needs of them, per user."""
    from django.contrib.auth import get_user_model

    User = get_user_model()
    per_user = {}

    def entry(email):
        user = User.objects.get(email=email)
        if user.pk not in per_user:
            per_user[user.pk] = {'user_id': user.pk, 'email': user.email, 'otp_totp': [],
                                 'otp_static': [], 'allauth_totp': None,
                                 'allauth_recovery_codes': None}
        return user, per_user[user.pk]

    for d in spec.get('otp_totp', []):
        user, e = entry(d['email'])
        e['otp_totp'].append(otp_totp_device(user, d))
    for d in spec.get('otp_static', []):
        user, e = entry(d['email'])
        e['otp_static'].append(otp_static_device(user, d))
    for a in spec.get('allauth_totp', []):
        user, e = entry(a['email'])
        e['allauth_totp'] = allauth_totp(user, a)
    for a in spec.get('allauth_recovery_codes', []):
        user, e = entry(a['email'])
        e['allauth_recovery_codes'] = allauth_recovery_codes(user, a)
    return [per_user[pk] for pk in sorted(per_user)]


def at_time(module, when):
    """The `time` module as `module` sees it, stopped at `when` (None: the
    real clock), so that a library accepts a code at a chosen time."""
    from types import SimpleNamespace
    from unittest import mock

    import time
    return mock.patch.object(module, 'time', SimpleNamespace(
        time=(lambda: when) if when is not None else time.time))


def otp_totp_device(user, d):
    import time

    import django_otp.plugins.otp_totp.models as totp_models
    from django_otp.plugins.otp_totp.models import TOTPDevice

    import totp_code

    fields = {k: d[k] for k in ('key', 'digits', 'step', 't0', 'tolerance', 'drift') if k in d}
    device = TOTPDevice.objects.create(user=user, name=d.get('name', 'default'),
                                       confirmed=d.get('confirmed', True), **fields)
    accepted = None
    if d.get('verify'):
        # Whole seconds, so that "at" is exactly the time the library saw.
        when = int(time.time()) if d['verify'] is True else d['verify']
        [code] = totp_code.codes(totp_code.hex_to_base32(device.key), device.digits,
                                 device.step, device.t0, at=[when])
        with at_time(totp_models, when):
            if not device.verify_token(code['code']):
                raise RuntimeError(f'django-otp refused the pyotp code {code}')
        accepted = {'code': code['code'], 'at': when, 'counter': code['counter']}
    device.refresh_from_db()
    return {
        'id': device.pk, 'name': device.name, 'confirmed': device.confirmed,
        'key': device.key, 'secret_base32': totp_code.hex_to_base32(device.key),
        'config_url': device.config_url, 'digits': device.digits, 'step': device.step,
        't0': device.t0, 'tolerance': device.tolerance, 'drift': device.drift,
        'last_t': device.last_t,
        'last_step_start': device.t0 + device.last_t * device.step if device.last_t >= 0 else None,
        'accepted': accepted,
    }


def otp_static_device(user, d):
    from django_otp.plugins.otp_static.models import StaticDevice, StaticToken

    device = StaticDevice.objects.create(user=user, name=d.get('name', 'backup'),
                                         confirmed=d.get('confirmed', True))
    tokens = d.get('tokens') or [StaticToken.random_token() for _ in range(d.get('count', 5))]
    for token in tokens:
        device.token_set.create(token=token)
    for i in d.get('use', []):
        if not device.verify_token(tokens[i]):
            raise RuntimeError(f'django-otp refused its own static token {tokens[i]!r}')
    left = set(device.token_set.values_list('token', flat=True))
    return {
        'id': device.pk, 'name': device.name, 'confirmed': device.confirmed,
        'tokens': [{'token': t, 'used': i in d.get('use', [])} for i, t in enumerate(tokens)],
        'stored': sorted(left),
    }


def allauth_totp(user, a):
    from allauth.mfa import app_settings
    from allauth.mfa.models import Authenticator
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
    from allauth.mfa.utils import decrypt

    totp = TOTP.activate(user, a.get('secret') or generate_totp_secret())
    row = Authenticator.objects.get(pk=totp.instance.pk)
    return {'id': row.pk, 'secret': decrypt(row.data['secret']),
            'digits': app_settings.TOTP_DIGITS, 'period': app_settings.TOTP_PERIOD,
            'data': row.data}


def allauth_recovery_codes(user, a):
    from allauth.mfa.models import Authenticator
    from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
    from allauth.mfa.utils import encrypt

    codes = RecoveryCodes.activate(user)
    if 'migrated_codes' in a:
        # As allauth's documented upgrade from django-allauth-2fa leaves
        # them (docs.allauth.org, "Upgrading from django-allauth-2fa"): the
        # django-otp static tokens, through the adapter's encrypt(), no seed.
        codes.instance.data = {'migrated_codes': [encrypt(c) for c in a['migrated_codes']]}
        codes.instance.save()
    all_codes = codes.generate_codes()
    used = [all_codes[i] for i in a.get('use', [])]
    for code in used:
        if not RecoveryCodes(Authenticator.objects.get(pk=codes.instance.pk)).validate_code(code):
            raise RuntimeError(f'allauth refused its own recovery code {code!r}')
    row = Authenticator.objects.get(pk=codes.instance.pk)
    after = RecoveryCodes(row)
    return {'id': row.pk, 'codes': all_codes, 'unused': after.get_unused_codes(), 'used': used,
            'used_mask': row.data.get('used_mask'), 'migrated': 'migrated_codes' in row.data,
            'data': row.data}


def social_accounts(spec):
    """Makes the spec's social apps with the ORM and its accounts as allauth
    makes them at a login (see the module's doc)."""
    from datetime import datetime

    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import AnonymousUser
    from django.contrib.sessions.backends.db import SessionStore
    from django.test import RequestFactory

    from allauth.core import context
    from allauth.socialaccount.adapter import get_adapter
    from allauth.socialaccount.models import SocialAccount, SocialApp

    User = get_user_model()
    apps = []
    for a in spec.get('social_apps', []):
        app = SocialApp.objects.create(
            provider=a['provider'], provider_id=a.get('provider_id', ''),
            name=a.get('name', a['provider']), client_id=a['client_id'],
            secret=a.get('secret', ''), key=a.get('key', ''), settings=a.get('settings', {}))
        apps.append({'id': app.pk, 'provider': app.provider, 'provider_id': app.provider_id,
                     'name': app.name, 'client_id': app.client_id, 'secret': app.secret,
                     'key': app.key, 'settings': app.settings})

    request = RequestFactory().get('/')
    request.user = AnonymousUser()
    request.session = SessionStore()
    accounts = []
    with context.request_context(request):
        for s in spec.get('social_accounts', []):
            user = User.objects.get(email=s['email'])
            provider = get_adapter().get_provider(request, s['provider'])
            sociallogin = provider.sociallogin_from_response(request, s['data'])
            sociallogin.connect(request, user)
            account = sociallogin.account
            if 'date_joined' in s:
                SocialAccount.objects.filter(pk=account.pk).update(
                    date_joined=datetime.fromisoformat(s['date_joined']))
            account = SocialAccount.objects.get(pk=account.pk)
            accounts.append({'id': account.pk, 'user_id': user.pk, 'email': user.email,
                             'provider': account.provider, 'uid': account.uid,
                             'date_joined': account.date_joined.isoformat()})
    return {'apps': apps, 'accounts': accounts}


if __name__ == '__main__':
    main()
