#!/usr/bin/env python3
"""Builds a Django database with the REAL Django (5.2 + simplejwt) of the
test project beside this script (the seed's `user` app, see
latchkey_django/settings.py), for the tests of `latchkey import-django`.

    make_django_db.py (--sqlite PATH | --postgres URL) [--no-blacklist]
                      [--scenario standard | --spec | --migrate-only]

It runs the project's migrations against the database (plus simplejwt's
blacklist app unless --no-blacklist), then either creates the fixed
`standard` scenario (the default) or applies the JSON spec read from stdin
(--spec), through Django's ORM: users by `create_user`/`create_superuser` or a
plain `save()` (for rows the manager refuses, like an empty email), hashes
by `make_password(..., hasher=...)` with every stock hasher (low work
factors, see latchkey_django/hashers.py), refresh/access tokens by
simplejwt's `RefreshToken.for_user`, blacklisting by `token.blacklist()`.
It prints what it made as JSON on stdout.

Spec (every key optional, applied in this order):
  {"users": [{"email", "password", "hasher", "staff", "superuser", "active",
              "raw": true (save() without the manager), "unusable": true,
              "hash": "<stored as the password column, as is>"}],
   "set_password": [{"email", "password", "hasher"}],
   "tokens": [{"email", "blacklist": bool, "expired": bool}],
   "blacklist": ["<jti>", ...],
   "groups": [{"email", "group"}],
   "permissions": [{"email", "codename"}],
   "delete_tokens": true (empties the blacklist tables)}
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument('--sqlite', metavar='PATH')
    target.add_argument('--postgres', metavar='URL')
    parser.add_argument('--no-blacklist', action='store_true',
                        help="without simplejwt's token_blacklist app")
    what = parser.add_mutually_exclusive_group()
    what.add_argument('--scenario', choices=['standard'], default='standard')
    what.add_argument('--spec', action='store_true', help='read a JSON spec on stdin')
    what.add_argument('--migrate-only', action='store_true')
    args = parser.parse_args()

    if args.sqlite:
        os.environ['LATCHKEY_DJANGO_SQLITE'] = str(Path(args.sqlite).resolve())
    else:
        os.environ['LATCHKEY_DJANGO_POSTGRES'] = args.postgres
    os.environ['LATCHKEY_DJANGO_BLACKLIST'] = '0' if args.no_blacklist else '1'
    os.environ['DJANGO_SETTINGS_MODULE'] = 'latchkey_django.settings'
    sys.path.insert(0, str(HERE))

    import django
    django.setup()
    from django.core.management import call_command

    with redirect_stdout(io.StringIO()):
        call_command('migrate', interactive=False, verbosity=0)
    if args.migrate_only:
        spec = {}
    elif args.spec:
        spec = json.load(sys.stdin)
    else:
        spec = STANDARD
    print(json.dumps(apply(spec, blacklist_app=not args.no_blacklist), indent=1))


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


if __name__ == '__main__':
    main()
