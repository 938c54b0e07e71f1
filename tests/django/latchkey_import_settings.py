"""Django settings for the import tests: the seed project's own settings
(`../shared/peer/django_seed/watti_backend/settings.py`), plus simplejwt's
blacklist app (a team that blacklists tokens has it installed), every stock
password hasher with low work factors (real Django code, cheap to verify in a
debug build), and the database `make_django_db.py` was given."""

import os
from urllib.parse import unquote, urlparse

from django.contrib.auth import hashers as _h

from watti_backend.settings import *  # noqa: F401,F403 - the seed's settings
from watti_backend.settings import INSTALLED_APPS as _SEED_APPS

if os.environ.get('LATCHKEY_DJANGO_BLACKLIST', '1') == '1':
    INSTALLED_APPS = list(_SEED_APPS) + ['rest_framework_simplejwt.token_blacklist']
else:
    INSTALLED_APPS = list(_SEED_APPS)


class FastPBKDF2(_h.PBKDF2PasswordHasher):
    iterations = 1000


class FastPBKDF2SHA1(_h.PBKDF2SHA1PasswordHasher):
    iterations = 1000


class FastArgon2(_h.Argon2PasswordHasher):
    time_cost = 1
    memory_cost = 1024
    parallelism = 1


class FastBCryptSHA256(_h.BCryptSHA256PasswordHasher):
    rounds = 4


class FastBCrypt(_h.BCryptPasswordHasher):
    rounds = 4


class FastScrypt(_h.ScryptPasswordHasher):
    work_factor = 2 ** 10


# Order matters only for make_password without hasher= (the first one).
PASSWORD_HASHERS = [
    'latchkey_import_settings.FastPBKDF2',
    'latchkey_import_settings.FastPBKDF2SHA1',
    'latchkey_import_settings.FastArgon2',
    'latchkey_import_settings.FastBCryptSHA256',
    'latchkey_import_settings.FastBCrypt',
    'latchkey_import_settings.FastScrypt',
    'django.contrib.auth.hashers.MD5PasswordHasher',
]

_sqlite = os.environ.get('LATCHKEY_DJANGO_SQLITE')
_postgres = os.environ.get('LATCHKEY_DJANGO_POSTGRES')
if _sqlite:
    DATABASES = {'default': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': _sqlite}}
elif _postgres:
    _u = urlparse(_postgres)
    DATABASES = {
        'default': {
            'ENGINE': 'django.db.backends.postgresql',
            'NAME': _u.path.lstrip('/'),
            'USER': unquote(_u.username or 'postgres'),
            'PASSWORD': unquote(_u.password or ''),
            'HOST': _u.hostname or '127.0.0.1',
            'PORT': str(_u.port or 5432),
        }
    }
else:
    raise RuntimeError('set LATCHKEY_DJANGO_SQLITE or LATCHKEY_DJANGO_POSTGRES')
