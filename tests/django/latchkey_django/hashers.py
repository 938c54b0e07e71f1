"""Django's stock password hashers with low work factors, as Django's docs
suggest for tests: the hashes are Django's own, cheap to verify in a debug
build of latchkey."""

from django.contrib.auth import hashers as _h


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
