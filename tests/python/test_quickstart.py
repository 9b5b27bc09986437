"""examples/quickstart.py runs end to end against the real database."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import DATABASE_URL

QUICKSTART = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "quickstart.py")


def test_quickstart_runs_end_to_end() -> None:
    env = dict(os.environ, DATABASE_URL=DATABASE_URL)
    out = subprocess.run([sys.executable, QUICKSTART], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for line in (
        "found: Alice",
        "rolled back Mallory's transaction: 0 rows",
        "streamed every user in batches of [1000, 1000, 1000, 1000, 1000, 3]",
        "users per state: [{'is_active': False, 'n': 1668}, {'is_active': True, 'n': 3335}]",
        "posts: {'n': 40, 'authors': 4}",
        "Alice's posts: [('Post 0', 'Alice'), ('Post 4', 'Alice')]",
        "joined with their authors: [('Post 3', 'user0'), ('Post 7', 'user0')]",
        "posts per author name: [{'author__name': 'Alice', 'n': 10}, {'author__name': 'Carol', 'n': 10}]",
        "posts per author: [('Alice', 10), ",
        "Alice's 10 posts came with one more query for all of them",
        "bulk_update wrote 5 rows in one statement; last: 'NOTIFICATION 4'",
        "upserted notification 1: read=True, message kept 'NOTIFICATION 0'",
        "posts per author state: [{'is_active': False, 'posts': 20}, {'is_active': True, 'posts': 20}]",
        "each user, computed: [('ALICE', 'writer', 'Post 36'), ('ROBERT', 'writer', 'Post 37')]",
        "FieldError before any SQL: unknown field `nmae`",
        "renamed user 1 to 'Updated'",
    ):
        assert line in out.stdout, out.stdout
