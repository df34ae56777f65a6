"""People and their logins: passwords, throttled logins, who becomes staff, the demo's admin, refused pages.

Personas: alice of Flowgate admins, bob from Support, carol who was just created without any group."""

from __future__ import annotations

import logging
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.test import Client

from flows.roles import ADMINS, SUPPORT
from tests.conftest import admin_user, support_user

from .conftest import logged_in

pytestmark = pytest.mark.django_db
LOGIN = "/admin/login/"
THROTTLED = "Too many failed logins"


def log_in(client: Client, username: str, password: str, **headers: str):
    return client.post(LOGIN, {"username": username, "password": password, "next": "/admin/"}, headers=headers)


def logged_in_as(client: Client) -> str | None:
    user = client.get("/admin/").wsgi_request.user
    return user.get_username() if user.is_authenticated else None


# --- passwords ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("password, message", [
    ("password123", "This password is too common."),
    ("4839201756", "This password is entirely numeric."),
])
def test_common_and_numeric_passwords_are_refused(password, message):
    with pytest.raises(ValidationError) as refused:
        validate_password(password)

    assert message in refused.value.messages


def test_an_admin_cannot_give_someone_a_common_password(db):
    alice, bob = admin_user(), support_user()

    response = logged_in(alice).post(f"/admin/auth/user/{bob.pk}/password/",
                                     {"password1": "qwerty123", "password2": "qwerty123"})

    assert response.status_code == 200
    assert "This password is too common." in response.content.decode()
    bob.refresh_from_db()
    assert bob.check_password("bob-password-1")


# --- the login, throttled -----------------------------------------------------------------------------------


@pytest.fixture
def login_limits(settings):
    settings.FLOWGATE_LOGIN_MAX_FAILURES = 3
    settings.FLOWGATE_LOGIN_MAX_FAILURES_PER_ADDRESS = 5
    settings.FLOWGATE_LOGIN_WINDOW_SECONDS = 900


def test_a_user_name_is_refused_after_repeated_failures_even_with_the_right_password(login_limits, client, caplog):
    admin_user()
    for _ in range(3):
        assert "Please enter the correct username and password" in log_in(client, "alice", "wrong").content.decode()

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="flowgate.login"):
        response = log_in(client, "alice", "alice-password-1")

    assert response.status_code == 200
    assert (f"{THROTTLED} for this user name: logins are refused for up to 15 minutes. Wait and try again"
            in response.content.decode())
    assert logged_in_as(client) is None
    assert [r.getMessage() for r in caplog.records] == [
        "Login refused: too many failed logins for this user name (user name 'alice', address 127.0.0.1)."]
    # The user name is counted whatever address it comes from, and whatever its case.
    assert THROTTLED in log_in(Client(REMOTE_ADDR="10.0.0.9"), "ALICE", "alice-password-1").content.decode()


def test_each_failure_is_logged_and_others_still_log_in(login_limits, client, caplog):
    admin_user(), support_user()

    with caplog.at_level(logging.WARNING, logger="flowgate.login"):
        for _ in range(3):
            log_in(client, "alice", "wrong")

    assert [r.getMessage() for r in caplog.records] == ["Login failed for user name 'alice' from 127.0.0.1."] * 3
    assert log_in(client, "bob", "bob-password-1").status_code == 302
    assert logged_in_as(client) == "bob"


def test_an_address_is_refused_after_failures_across_user_names(login_limits, client):
    support_user()
    for name in ("mallory", "trent", "oscar", "peggy", "victor"):
        log_in(client, name, "guess")

    response = log_in(client, "bob", "bob-password-1")

    assert f"{THROTTLED} from this address: logins are refused" in response.content.decode()
    assert logged_in_as(client) is None
    assert log_in(Client(REMOTE_ADDR="10.0.0.9"), "bob", "bob-password-1").status_code == 302


def test_a_successful_login_clears_the_user_names_failures(login_limits, client):
    admin_user()
    log_in(client, "alice", "wrong"), log_in(client, "alice", "wrong")
    assert log_in(client, "alice", "alice-password-1").status_code == 302
    client.post("/admin/logout/")

    log_in(client, "alice", "wrong"), log_in(client, "alice", "wrong")

    assert log_in(client, "alice", "alice-password-1").status_code == 302


def test_the_forwarded_address_counts_only_behind_a_trusted_proxy(login_limits, settings):
    support_user()
    for name in ("mallory", "trent", "oscar", "peggy", "victor"):
        log_in(Client(), name, "guess", X_Forwarded_For=f"198.51.100.{len(name)}")
    # Without a trusted proxy the header is the client's to forge: the connection's address was counted.
    assert THROTTLED in log_in(Client(), "bob", "bob-password-1").content.decode()

    settings.FLOWGATE_TRUSTED_PROXIES = 1
    behind_proxy = Client(REMOTE_ADDR="10.0.0.2")
    for name in ("mallory", "trent", "oscar", "peggy", "victor"):
        log_in(behind_proxy, name, "guess", X_Forwarded_For="spoofed, 203.0.113.7")

    assert THROTTLED in log_in(behind_proxy, "bob", "bob-password-1",
                               X_Forwarded_For="198.51.100.1, 203.0.113.7").content.decode()
    assert log_in(behind_proxy, "bob", "bob-password-1", X_Forwarded_For="203.0.113.8").status_code == 302


# --- who may log in ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("group", [SUPPORT, ADMINS])
def test_joining_a_role_group_lets_a_new_person_log_in(client, group):
    carol = get_user_model().objects.create_user("carol", "carol@example.com", "carol-password-1")
    assert log_in(client, "carol", "carol-password-1").status_code == 200  # not staff: refused

    carol.groups.add(Group.objects.get(name=group))

    carol.refresh_from_db()
    assert carol.is_staff and not carol.is_superuser
    assert log_in(client, "carol", "carol-password-1").status_code == 302
    assert client.get("/console/").status_code == 200


def test_adding_people_from_the_groups_side_makes_them_staff_too(db):
    carol = get_user_model().objects.create_user("carol", "carol@example.com", "carol-password-1")
    dave = get_user_model().objects.create_user("dave", "dave@example.com", "dave-password-1")

    Group.objects.get(name=SUPPORT).user_set.add(carol)
    Group.objects.create(name="Newsletter").user_set.add(dave)

    assert get_user_model().objects.get(username="carol").is_staff
    assert not get_user_model().objects.get(username="dave").is_staff  # not a Flowgate role


def _user_form(user, **changes) -> dict:
    data = {"username": user.username, "email": user.email, "is_active": "on", "is_staff": "on",
            "groups": [group.pk for group in user.groups.all()], "date_joined_0": "2026-12-01",
            "date_joined_1": "10:00:00", "initial-date_joined_0": "2026-12-01", "initial-date_joined_1": "10:00:00"}
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def test_alice_adds_carol_to_support_on_her_page_and_carol_can_log_in(db):
    alice = admin_user()
    carol = get_user_model().objects.create_user("carol", "carol@example.com", "carol-password-1")

    response = logged_in(alice).post(f"/admin/auth/user/{carol.pk}/change/", _user_form(
        carol, is_staff=None, groups=[Group.objects.get(name=SUPPORT).pk]), follow=True)

    assert response.status_code == 200
    carol.refresh_from_db()
    assert carol.is_staff
    assert "cannot log in" not in response.content.decode()


def test_the_user_page_says_plainly_why_someone_cannot_log_in(db):
    alice, bob = admin_user(), support_user()
    carol = get_user_model().objects.create_user("carol", "carol@example.com", "carol-password-1", is_staff=True)

    staff_off = logged_in(alice).post(f"/admin/auth/user/{bob.pk}/change/", _user_form(bob, is_staff=None),
                                      follow=True).content.decode()
    no_group = logged_in(alice).post(f"/admin/auth/user/{carol.pk}/change/", _user_form(carol), follow=True)

    assert "User bob cannot log in: Staff status is off" in staff_off
    assert "User carol is in neither Support nor Flowgate admins" in no_group.content.decode()


# --- the demo's admin ----------------------------------------------------------------------------------------


def seed_demo(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", "--salesforce-url", "https://demo.my.salesforce.com", *args, stdout=out)
    return out.getvalue()


def test_seed_demo_sets_the_admin_password_only_when_it_creates_the_user(client):
    assert "(password set)" in seed_demo()
    assert client.login(username="admin", password="admin")
    admin = get_user_model().objects.get(username="admin")
    admin.set_password("a-better-secret-42")
    admin.save()

    assert "(its password unchanged)" in seed_demo()

    assert not client.login(username="admin", password="admin")
    assert client.login(username="admin", password="a-better-secret-42")


def test_seed_demo_sets_the_password_it_is_given(client):
    seed_demo()

    seed_demo("--admin-password", "chosen-on-purpose-7")

    assert client.login(username="admin", password="chosen-on-purpose-7")


# --- refused pages -------------------------------------------------------------------------------------------


def test_a_refused_admin_page_is_styled_with_a_way_back_and_logged_once_without_traceback(caplog):
    bob = support_user()
    client = logged_in(bob)

    with caplog.at_level(logging.INFO, logger="django.request"):
        response = client.get("/admin/flows/externalclientapp/", headers={"Referer": "http://testserver/console/"})

    page = response.content.decode()
    assert response.status_code == 403
    assert "You may not open this page" in page and "You are logged in as <strong>bob</strong>, in Support" in page
    assert '/static/admin/css/base.' in page  # the admin's look
    assert '<a href="http://testserver/console/">Back to the page you came from</a>' in page
    assert '<a href="/admin/">' in page and '<a href="/console/">' in page
    records = [r for r in caplog.records if r.name == "django.request"]
    assert [(r.levelname, r.getMessage(), r.exc_info) for r in records] == [
        ("WARNING", "Forbidden (Permission denied): /admin/flows/externalclientapp/ (user bob)", None)]


def test_a_refused_console_page_has_the_consoles_look():
    dave = get_user_model().objects.create_user("dave", "dave@example.com", "dave-password-1", is_staff=True)

    response = logged_in(dave).get("/console/", headers={"Referer": "https://evil.example/"})

    page = response.content.decode()
    assert response.status_code == 403
    assert "/static/console/console." in page and "in no Flowgate group" in page
    assert "evil.example" not in page  # a way back only to this site


def test_a_form_without_its_csrf_token_gets_the_styled_page_saying_what_to_do():
    client = logged_in(support_user(), enforce_csrf_checks=True)

    response = client.post("/console/triggers/resend/", {"trigger": "1"})

    assert response.status_code == 403
    page = response.content.decode()
    assert "The form could not be checked" in page and "reload the page" in page
