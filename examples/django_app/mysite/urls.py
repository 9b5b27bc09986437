from django.urls import path

from users import views

urlpatterns = [
    path("users/", views.user_list, name="user_list"),
    path("users/async/", views.user_list_async, name="user_list_async"),
]
