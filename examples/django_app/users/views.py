"""The spec's views, as written: a sync view for WSGI (``all_sync``) and an async view
for ASGI (``await ...all()``)."""

from django.shortcuts import render

from .models import User


# Sync view
def user_list(request):
    users = User.objects.all_sync()
    return render(request, "users.html", {"users": users})


# Async view (Django 4.1+)
async def user_list_async(request):
    users = await User.objects.all()
    return render(request, "users.html", {"users": users})
