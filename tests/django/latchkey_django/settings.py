"""Settings of the Django project the import tests run (tests/django/).

The seed project's settings (the Django 5.2 + DRF + simplejwt backend that
latchkey replaces), with what the tests change:

- the database comes from LATCHKEY_DJANGO_SQLITE (a path) or
  LATCHKEY_DJANGO_POSTGRES (a URL), set by make_django_db.py;
- simplejwt's blacklist app is installed unless LATCHKEY_DJANGO_BLACKLIST=0
  (a team that blacklists tokens has it; one that does not, has not);
- the second factors a Django project may have (issue 22), only when
  LATCHKEY_DJANGO_MFA=1 (make_django_db.py --mfa): django-otp with its TOTP
  and static plugins, and django-allauth's account and mfa apps (the seed
  has neither, and a database made without the flag has exactly the tables
  it had before, so the import's existing expectations hold);
- django-allauth's social accounts, only when LATCHKEY_DJANGO_SOCIAL=1
  (make_django_db.py --social): allauth's account and socialaccount apps
  with the google, github, apple and openid_connect providers;
- every stock password hasher, with low work factors (real Django code, cheap
  to verify in a debug build), see hashers.py.

The `user` app, its model and its migration are the seed's own, so the
tables (`user_user`, `user_user_groups`, ...) are the ones a team migrating
from the seed has.
"""

import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote, urlparse

BASE_DIR = Path(__file__).resolve().parent.parent

# The key of the seed's settings: simplejwt signs the tests' tokens with it,
# and the tests run latchkey with it as SECRET_KEY.
SECRET_KEY = 'django-insecure-ux1fai&rd72d8gi4zdp=-$dz2k!e(u@yny_ivje-qxa-5czy)y'
DEBUG = True
ALLOWED_HOSTS = ['127.0.0.1', 'localhost', '[::1]']

INSTALLED_APPS = [
    'django.contrib.admin',
    'django.contrib.auth',
    'django.contrib.contenttypes',
    'django.contrib.sessions',
    'django.contrib.messages',
    'django.contrib.staticfiles',
    'user',
    'rest_framework',
    'rest_framework_simplejwt',
]
if os.environ.get('LATCHKEY_DJANGO_BLACKLIST', '1') == '1':
    INSTALLED_APPS.append('rest_framework_simplejwt.token_blacklist')
MFA = os.environ.get('LATCHKEY_DJANGO_MFA', '0') == '1'
SOCIAL = os.environ.get('LATCHKEY_DJANGO_SOCIAL', '0') == '1'
ALLAUTH = MFA or SOCIAL
if MFA:
    INSTALLED_APPS += [
        'django_otp',
        'django_otp.plugins.otp_totp',
        'django_otp.plugins.otp_static',
    ]
if ALLAUTH:
    INSTALLED_APPS += ['allauth', 'allauth.account']
if MFA:
    INSTALLED_APPS += ['allauth.mfa']
if SOCIAL:
    # No django.contrib.sites: allauth then keeps its apps without sites
    # (SOCIALACCOUNT's SITES_ENABLED follows it).
    INSTALLED_APPS += [
        'allauth.socialaccount',
        'allauth.socialaccount.providers.google',
        'allauth.socialaccount.providers.github',
        'allauth.socialaccount.providers.apple',
        'allauth.socialaccount.providers.openid_connect',
    ]

MIDDLEWARE = [
    'django.middleware.security.SecurityMiddleware',
    'django.contrib.sessions.middleware.SessionMiddleware',
    'django.middleware.common.CommonMiddleware',
    'django.middleware.csrf.CsrfViewMiddleware',
    'django.contrib.auth.middleware.AuthenticationMiddleware',
    'django.contrib.messages.middleware.MessageMiddleware',
    'django.middleware.clickjacking.XFrameOptionsMiddleware',
]
# Where the projects' documentation puts them: django-otp's after
# AuthenticationMiddleware; allauth.account refuses to start without its.
if MFA:
    MIDDLEWARE += ['django_otp.middleware.OTPMiddleware']
if ALLAUTH:
    MIDDLEWARE += ['allauth.account.middleware.AccountMiddleware']

ROOT_URLCONF = 'latchkey_django.urls'

TEMPLATES = [
    {
        'BACKEND': 'django.template.backends.django.DjangoTemplates',
        'DIRS': [],
        'APP_DIRS': True,
        'OPTIONS': {
            'context_processors': [
                'django.template.context_processors.request',
                'django.contrib.auth.context_processors.auth',
                'django.contrib.messages.context_processors.messages',
            ],
        },
    },
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

# Order matters only for make_password without hasher= (the first one).
PASSWORD_HASHERS = [
    'latchkey_django.hashers.FastPBKDF2',
    'latchkey_django.hashers.FastPBKDF2SHA1',
    'latchkey_django.hashers.FastArgon2',
    'latchkey_django.hashers.FastBCryptSHA256',
    'latchkey_django.hashers.FastBCrypt',
    'latchkey_django.hashers.FastScrypt',
    'django.contrib.auth.hashers.MD5PasswordHasher',
]

LANGUAGE_CODE = 'en-us'
TIME_ZONE = 'UTC'
USE_I18N = True
USE_TZ = True
STATIC_URL = 'static/'
DEFAULT_AUTO_FIELD = 'django.db.models.BigAutoField'
AUTH_USER_MODEL = 'user.User'

REST_FRAMEWORK = {
    'DEFAULT_AUTHENTICATION_CLASSES': (
        'rest_framework_simplejwt.authentication.JWTAuthentication',
    )
}

if ALLAUTH:
    # allauth for the seed's user model: the email is the login, there is no
    # username column. MFA_* stay allauth's defaults (TOTP of 6 digits every
    # 30 s, 10 recovery codes of 8 digits, secrets stored as they are by the
    # default adapter's encrypt()), the values latchkey's import assumes.
    AUTHENTICATION_BACKENDS = [
        'django.contrib.auth.backends.ModelBackend',
        'allauth.account.auth_backends.AuthenticationBackend',
    ]
    ACCOUNT_USER_MODEL_USERNAME_FIELD = None
    ACCOUNT_LOGIN_METHODS = {'email'}
    ACCOUNT_SIGNUP_FIELDS = ['email*', 'password1*', 'password2*']

# The seed's SIMPLE_JWT, as far as the tokens it issues depend on it.
SIMPLE_JWT = {
    'ACCESS_TOKEN_LIFETIME': timedelta(minutes=30),
    'REFRESH_TOKEN_LIFETIME': timedelta(days=7),
    'ROTATE_REFRESH_TOKENS': False,
    'BLACKLIST_AFTER_ROTATION': False,
    'UPDATE_LAST_LOGIN': False,
    'ALGORITHM': 'HS256',
    'SIGNING_KEY': SECRET_KEY,
    'AUTH_HEADER_TYPES': ('Bearer',),
    'USER_ID_FIELD': 'id',
    'USER_ID_CLAIM': 'user_id',
    'TOKEN_TYPE_CLAIM': 'token_type',
    'JTI_CLAIM': 'jti',
}
