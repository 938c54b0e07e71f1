#!/usr/bin/env python3
"""Fills a Django-shaped SQLite database (made by tests/django/make_django_db.py
--migrate-only, i.e. the seed project's own migrations) with N generated users
and T unexpired simplejwt outstanding tokens (one in ten blacklisted),
directly with sqlite3: 100,000 ORM saves would take far longer than the
import being measured. Every user has the same pbkdf2_sha256 hash (Django's
format and Django 5.2's 1,000,000 iterations; computed once).

    import_fill.py PATH USERS TOKENS
"""
import base64
import hashlib
import sqlite3
import sys
import uuid
from datetime import datetime, timedelta, timezone

path, users, tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
salt = 'benchsaltbenchsalt1234'
digest = hashlib.pbkdf2_hmac('sha256', b'bench-passphrase-42', salt.encode(), 1_000_000)
hash_ = f'pbkdf2_sha256$1000000${salt}${base64.b64encode(digest).decode()}'
now = datetime.now(timezone.utc).replace(tzinfo=None)
joined = (now - timedelta(days=30)).strftime('%Y-%m-%d %H:%M:%S.%f')
issued = (now - timedelta(hours=1)).strftime('%Y-%m-%d %H:%M:%S.%f')
expires = (now + timedelta(days=6)).strftime('%Y-%m-%d %H:%M:%S')

db = sqlite3.connect(path)
db.execute('PRAGMA journal_mode = WAL')
db.executemany(
    'INSERT INTO user_user (id, password, last_login, email, is_superuser, is_active, '
    'is_staff, created_at, updated_at) VALUES (?, ?, NULL, ?, 0, 1, 0, ?, ?)',
    ((i, hash_, f'User{i}@Example.com', joined, joined) for i in range(1, users + 1)))
db.executemany(
    'INSERT INTO token_blacklist_outstandingtoken (id, token, created_at, expires_at, '
    'user_id, jti) VALUES (?, ?, ?, ?, ?, ?)',
    ((i, 'x', issued, expires, (i * 7919) % users + 1, uuid.uuid4().hex)
     for i in range(1, tokens + 1)))
db.executemany(
    'INSERT INTO token_blacklist_blacklistedtoken (token_id, blacklisted_at) VALUES (?, ?)',
    ((i, issued) for i in range(1, tokens + 1, 10)))
db.commit()
