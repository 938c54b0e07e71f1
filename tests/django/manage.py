#!/usr/bin/env python
"""Django's command-line utility for the test project, e.g.

    LATCHKEY_DJANGO_SQLITE=/tmp/d.sqlite3 /tmp/latchkey-django-venv/bin/python manage.py migrate
"""
import os
import sys


def main():
    os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'latchkey_django.settings')
    from django.core.management import execute_from_command_line
    execute_from_command_line(sys.argv)


if __name__ == '__main__':
    main()
