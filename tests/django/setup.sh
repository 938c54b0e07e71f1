#!/usr/bin/env bash
# The Python environment of the Django tests: a venv with requirements.txt
# (the seed project's Django, DRF, simplejwt, argon2-cffi, bcrypt, psycopg;
# django-otp, django-allauth[mfa] and pyotp for second factors,
# allauth's [socialaccount] extra for social accounts) from PyPI,
# at LATCHKEY_DJANGO_VENV (default /tmp/latchkey-django-venv).
#
# Idempotent and cheap once done: the venv keeps a copy of the requirements
# it was made from, and a run whose copy matches does nothing; a changed
# requirements.txt is installed into the same venv again (pip adds and
# changes what differs). Parallel runs (test binaries, .ci/run) wait for
# each other on a lock beside the venv.
# Exits non-zero, saying why, when the venv cannot be made.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
VENV=${LATCHKEY_DJANGO_VENV:-/tmp/latchkey-django-venv}
PYTHON=${PYTHON:-python3}
REQUIREMENTS="$HERE/requirements.txt"
STAMP="$VENV/latchkey-requirements.txt"

ready() { [ -x "$VENV/bin/python" ] && cmp -s "$REQUIREMENTS" "$STAMP"; }

ready && exit 0
mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock 9
# Another run may have finished it while this one waited.
ready && exit 0

echo "[tests/django/setup.sh] installing $REQUIREMENTS into $VENV" >&2
if [ ! -x "$VENV/bin/pip" ]; then
  "$PYTHON" -m venv --clear "$VENV"
fi
"$VENV/bin/pip" install --quiet -r "$REQUIREMENTS"
# The project loads and passes Django's checks with these packages, with
# and without the second factors' and the social accounts' apps
# (LATCHKEY_DJANGO_MFA, LATCHKEY_DJANGO_SOCIAL, settings.py).
for apps in "0 0" "1 0" "0 1" "1 1"; do
  read -r mfa social <<<"$apps"
  LATCHKEY_DJANGO_MFA=$mfa LATCHKEY_DJANGO_SOCIAL=$social LATCHKEY_DJANGO_SQLITE=:memory: \
    "$VENV/bin/python" "$HERE/manage.py" check --fail-level WARNING >&2
done
cp "$REQUIREMENTS" "$STAMP"
echo "[tests/django/setup.sh] ready: $VENV" >&2
