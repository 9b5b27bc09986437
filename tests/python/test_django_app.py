"""examples/django_app: its own test suite (Django's test client over the WSGI and ASGI
handlers), run with ``manage.py test`` in a subprocess — Django's settings are
process-wide and test_spec_examples.py configures its own; then both views served by
Django's threaded dev server and by uvicorn (ASGI), over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from conftest import DATABASE_URL, recreate

PROJECT = Path(__file__).resolve().parents[2] / "examples" / "django_app"


def test_django_example_views_render_users_sync_and_async() -> None:
    env = {**os.environ, "CHAKRA_DATABASE_URL": DATABASE_URL, "CHAKRA_DEV": "1"}
    result = subprocess.run(
        [sys.executable, "manage.py", "test", "users", "-v", "2"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Ran 4 tests" in output and "OK" in output, output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(command: list[str], port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(command, cwd=PROJECT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return server
        except OSError:
            if server.poll() is not None:
                break
            time.sleep(0.1)
    server.kill()
    _, err = server.communicate()
    raise AssertionError(f"{command} did not start: {err.decode(errors='replace')}")


def _stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def test_views_under_the_threaded_dev_server_and_uvicorn() -> None:
    import chakra
    from chakra import Boolean, Field, Integer, Model, String

    class User(Model):  # the example's model, declared here: its package is not importable
        __tablename__ = "django_example_users"
        id = Field(Integer, primary_key=True)
        name = Field(String(100))
        is_active = Field(Boolean, default=True)

    recreate(User)
    User.objects.bulk_create_sync([User(name="Ada"), User(name="Grace")])
    env = {**os.environ, "CHAKRA_DATABASE_URL": DATABASE_URL, "PYTHONPATH": str(PROJECT)}
    try:
        wsgi_port, asgi_port = _free_port(), _free_port()
        servers = [
            _serve([sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{wsgi_port}"], wsgi_port, env),
            _serve(
                [sys.executable, "-m", "uvicorn", "mysite.asgi:application", "--port", str(asgi_port), "--log-level", "warning"],
                asgi_port,
                env,
            ),
        ]
        try:
            for url in (
                f"http://127.0.0.1:{wsgi_port}/users/",
                f"http://127.0.0.1:{wsgi_port}/users/async/",
                f"http://127.0.0.1:{asgi_port}/users/async/",
                f"http://127.0.0.1:{asgi_port}/users/",
            ):
                response = httpx.get(url, timeout=30)
                assert response.status_code == 200, (url, response.text[:500])
                assert "<li>Ada</li>" in response.text and "<li>Grace</li>" in response.text, url
        finally:
            for server in servers:
                _stop(server)
    finally:
        chakra.drop_all_sync([User])
