"""Both views through Django's test client (sync over the WSGI handler, async over the
ASGI handler) with rows in Chakra's database; and the dev-mode warning for a ``_sync``
call inside an async view (run with ``CHAKRA_DEV=1``)."""

import os
import threading
import warnings

from django.shortcuts import render
from django.test import AsyncClient, Client, RequestFactory, SimpleTestCase

import chakra

from .models import User

EXPECTED = ["<li>Ada</li>", "<li>Grace</li>", "<li>Edsger (inactive)</li>"]


class UserListTests(SimpleTestCase):
    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        chakra.drop_all_sync([User])
        chakra.create_all_sync([User])
        User.objects.bulk_create_sync([User(name="Ada"), User(name="Grace"), User(name="Edsger", is_active=False)])

    @classmethod
    def tearDownClass(cls) -> None:
        chakra.drop_all_sync([User])
        super().tearDownClass()

    def assert_lists_users(self, content: bytes) -> None:
        html = content.decode()
        positions = [html.index(item) for item in EXPECTED]
        self.assertEqual(positions, sorted(positions), html)

    def test_sync_view_renders_the_users(self) -> None:
        with warnings.catch_warnings():
            # A `_sync` call on a thread with no running event loop never warns.
            warnings.simplefilter("error", chakra.SyncInAsyncWarning)
            response = Client().get("/users/")
        self.assertEqual(response.status_code, 200)
        self.assert_lists_users(response.content)

    def test_sync_view_from_many_threads(self) -> None:
        """What Django's threaded dev server does: one request per thread."""
        results: list[int] = []

        def get() -> None:
            results.append(Client().get("/users/").status_code)

        threads = [threading.Thread(target=get) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(results, [200] * 8)

    async def test_async_view_renders_the_users(self) -> None:
        response = await AsyncClient().get("/users/async/")
        self.assertEqual(response.status_code, 200)
        self.assert_lists_users(response.content)

    async def test_sync_call_inside_an_async_view_warns_in_dev_mode(self) -> None:
        self.assertEqual(os.environ.get("CHAKRA_DEV"), "1", "run these tests with CHAKRA_DEV=1")

        async def blocking_user_list(request):  # the mistake: `all_sync` blocks the loop
            return render(request, "users.html", {"users": User.objects.all_sync()})

        with self.assertWarns(chakra.SyncInAsyncWarning):
            response = await blocking_user_list(RequestFactory().get("/users/"))
        self.assert_lists_users(response.content)
