"""Verifies tokens with the real simplejwt, as a Django backend would.

Reads a JSON list of {"type": "access" | "refresh" | "sliding", "token"} on
stdin and prints, for each, {"valid": true, "payload": {...}} or
{"valid": false, "error": "..."}: simplejwt's own AccessToken, RefreshToken
and SlidingToken classes under the seed's SIMPLE_JWT settings (HS256 with
the seed's SECRET_KEY). Without the blacklist app, nothing here touches a
database.
"""

import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main():
    os.environ.setdefault('LATCHKEY_DJANGO_SQLITE', ':memory:')
    os.environ['LATCHKEY_DJANGO_BLACKLIST'] = '0'
    os.environ['DJANGO_SETTINGS_MODULE'] = 'latchkey_django.settings'
    sys.path.insert(0, str(HERE))

    import django
    django.setup()
    from rest_framework_simplejwt.exceptions import TokenError
    from rest_framework_simplejwt.tokens import AccessToken, RefreshToken, SlidingToken

    kinds = {'access': AccessToken, 'refresh': RefreshToken, 'sliding': SlidingToken}
    answers = []
    for item in json.load(sys.stdin):
        try:
            token = kinds[item['type']](item['token'])
            answers.append({'valid': True, 'payload': dict(token.payload)})
        except TokenError as error:
            answers.append({'valid': False, 'error': str(error)})
    print(json.dumps(answers))


if __name__ == '__main__':
    main()
