"""SSRF: a secret or a token is only ever sent to a Salesforce API host (salesforce-api.md section 6) or an
explicit FLOWGATE_EXTRA_SALESFORCE_HOSTS entry. Salesforce is mocked with `responses`, which records every
request the client makes, matched or not.

Decisions, each tested below:
- userinfo (`user@`, `a.my.salesforce.com@evil.com`, `evil.com\\@a.my.salesforce.com`): refused. The last one
  is a parser differential (urlsplit sees the Salesforce host, requests would go to evil.com).
- IP literals in any notation (dotted, decimal, hex, octal, IPv6, IPv4-mapped): refused, unless the exact host
  is an extra host (the test emulator's 127.0.0.1); other spellings of that address are refused too.
- look-alike hosts (`acme.my.salesforce.com.evil.com`, Cyrillic letters, full-width dots, zero-width spaces,
  percent-encoding, a trailing dot): refused.
- UPPER CASE and :443 are the same host: accepted, and the request goes to the lower-case origin. Spellings
  the parser normalises (a tab, a Kelvin sign, a fragment) reach only the normalised host, if accepted at all.
- http on a Salesforce host: refused (only an extra host may use http).
- redirects: never followed, to any host, the same one included; the 3xx is recorded and the trigger fails.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
import responses
from django.core.exceptions import ValidationError
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from urllib3.util import parse_url

from flows import services
from flows.hosts import SALESFORCE_API_HOST, DisallowedHost, check_url
from flows.models import Exchange, ExternalClientApp, Org, Trigger
from flows.salesforce import SalesforceClient, SalesforceError
from tests.conftest import CONSUMER_SECRET, MY_DOMAIN, make_flow, make_org

pytestmark = pytest.mark.django_db

TOKEN_URL = f"{MY_DOMAIN}/services/oauth2/token"
INVOKE_URL = f"{MY_DOMAIN}/services/data/v65.0/actions/custom/flow/On_Demand_Flow"
ACCESS_TOKEN = "00DS7000000oxzo!AR8AQP.ssrf-access-token"
ANY_URL = re.compile(r".*")

HOSTILE = {
    "other host": "https://evil.example.com",
    "suffix": "https://acme.my.salesforce.com.evil.com",
    "prefix": "https://evilmy.salesforce.com",
    "login host": "https://login.salesforce.com",
    "test host": "https://test.salesforce.com",
    "lightning": "https://acme.lightning.force.com",
    "site": "https://acme.my.site.com",
    "setup": "https://acme.my.salesforce-setup.com",
    "http": "http://acme.my.salesforce.com",
    "other port": "https://acme.my.salesforce.com:8443",
    "port 0": "https://acme.my.salesforce.com:0",
    "port out of range": "https://acme.my.salesforce.com:65536",
    "user": "https://user@acme.my.salesforce.com",
    "user and password": "https://user:pw@acme.my.salesforce.com",
    "host as user": "https://acme.my.salesforce.com@evil.com",
    "backslash differential": "https://evil.com\\@acme.my.salesforce.com",
    "backslash in host": "https://acme.my.salesforce.com\\.evil.com",
    "newline removed": "https://acme.my.salesforce.com\n.evil.com",
    "loopback": "https://127.0.0.1",
    "metadata": "https://169.254.169.254",
    "metadata http": "http://169.254.169.254/latest/meta-data/",
    "private": "https://10.0.0.1",
    "decimal ip": "https://2130706433",
    "hex ip": "https://0x7f000001",
    "octal ip": "https://0177.0.0.1",
    "ipv6": "https://[::1]",
    "ipv4-mapped": "https://[::ffff:a9fe:a9fe]",
    "cyrillic a": "https://acme.my.s\u0430lesforce.com",
    "full-width dots": "https://acme.my\uff0esalesforce\uff0ecom",
    "zero-width space": "https://acme.my.salesforce.com\u200b",
    "right-to-left mark": "https://acme\u200f.my.salesforce.com",
    "percent-encoded": "https://%61cme.my.salesforce.com",
    "trailing dot": "https://acme.my.salesforce.com.",
    "scheme-relative": "//acme.my.salesforce.com",
    "no scheme": "acme.my.salesforce.com",
    "file": "file:///etc/passwd",
    "gopher": "gopher://acme.my.salesforce.com",
    "javascript": "javascript:alert(1)",
}
# Other spellings of the test emulator's extra host (127.0.0.1, any port) are not that host.
LOOPBACK_SPELLINGS = {
    "other loopback": "http://127.0.0.2:8765",
    "short form": "http://127.1:8765",
    "decimal": "http://2130706433:8765",
    "ipv6 loopback": "http://[::1]:8765",
    "ipv4-mapped": "http://[::ffff:127.0.0.1]:8765",
    "localhost": "http://localhost:8765",
    "wildcard dns": "http://127.0.0.1.nip.io:8765",
    "as user": "http://127.0.0.1:8765@evil.com",
    "in fragment": "http://evil.com#@127.0.0.1:8765",
}
SAME_HOST = {
    "upper case": ("https://ACME.MY.SALESFORCE.COM", "https://acme.my.salesforce.com"),
    "default port": ("https://acme.my.salesforce.com:443", "https://acme.my.salesforce.com"),
    "padded port": ("https://acme.my.salesforce.com:0443", "https://acme.my.salesforce.com"),
}
# Odd spellings the URL parser turns into a Salesforce host. Refusing them would be stricter (flows/hosts.py
# accepts them today); either way, no request may go anywhere but that normalised host.
ODD_SPELLINGS = {
    "tab removed by the parser": ("https://acme.my.sales\tforce.com", "https://acme.my.salesforce.com"),
    "kelvin sign lower-cases to k": ("https://\u212aacme.my.salesforce.com", "https://kacme.my.salesforce.com"),
    "fragment hiding a host": ("https://acme.my.salesforce.com#@evil.com", "https://acme.my.salesforce.com"),
}


@pytest.fixture
def sf():
    """Salesforce, mocked: every request the client makes is in sf.calls."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def catch_all(sf: responses.RequestsMock) -> None:
    """Answers any other URL with 599, so a request that should not happen is recorded and fails nothing
    silently. Called after a test's own registrations: responses matches in order of registration."""
    for method in (responses.GET, responses.POST):
        sf.add(method, ANY_URL, status=599, body="must not be called")


def org_at(url: str) -> Org:
    """An org whose URL skipped validation (an old row, a raw update): the client must refuse it on its own."""
    org = make_org()
    Org.objects.filter(pk=org.pk).update(my_domain_url=url)
    return Org.objects.get(pk=org.pk)


def failure_of(call) -> SalesforceError:
    with pytest.raises(SalesforceError) as caught:
        call()
    return caught.value


# --- the org's URL -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", HOSTILE.values(), ids=HOSTILE.keys())
def test_the_org_form_refuses_a_hostile_url(url, settings):
    settings.FLOWGATE_EXTRA_SALESFORCE_HOSTS = []
    with pytest.raises(ValidationError) as caught:
        Org(name="Acme", slug="acme", my_domain_url=url).full_clean()

    assert "my_domain_url" in caught.value.message_dict


@pytest.mark.parametrize("url", HOSTILE.values(), ids=HOSTILE.keys())
def test_the_client_refuses_a_hostile_url_without_any_request(sf, url, settings):
    settings.FLOWGATE_EXTRA_SALESFORCE_HOSTS = []
    catch_all(sf)
    client = SalesforceClient(org_at(url))

    for call in (client.fetch_token, client.list_versions, lambda: client.invoke("On_Demand_Flow", [{}])):
        failure = failure_of(call)
        assert (failure.code, failure.permanent) == ("DISALLOWED_HOST", True)
        assert "My Domain" in failure.hint

    assert list(sf.calls) == []  # not even a connection attempt
    assert not Exchange.objects.exists()


@pytest.mark.parametrize("url", LOOPBACK_SPELLINGS.values(), ids=LOOPBACK_SPELLINGS.keys())
def test_an_extra_host_is_that_exact_host_only(sf, url, settings):
    settings.FLOWGATE_EXTRA_SALESFORCE_HOSTS = ["127.0.0.1"]
    catch_all(sf)

    with pytest.raises(ValidationError):
        Org(name="Acme", slug="acme", my_domain_url=url).full_clean()
    assert failure_of(SalesforceClient(org_at(url)).fetch_token).code == "DISALLOWED_HOST"
    assert list(sf.calls) == []


@pytest.mark.parametrize("url, origin", SAME_HOST.values(), ids=SAME_HOST.keys())
def test_spellings_of_a_salesforce_host_reach_that_host_only(sf, url, origin):
    sf.post(f"{origin}/services/oauth2/token", json={"access_token": ACCESS_TOKEN, "instance_url": origin})
    catch_all(sf)

    assert check_url(url) == origin
    SalesforceClient(org_at(url)).fetch_token()

    assert [call.request.url for call in sf.calls] == [f"{origin}/services/oauth2/token"]


@pytest.mark.parametrize("url, origin", ODD_SPELLINGS.values(), ids=ODD_SPELLINGS.keys())
def test_odd_spellings_are_refused_or_reach_the_normalised_host_only(sf, url, origin):
    sf.post(f"{origin}/services/oauth2/token", json={"access_token": ACCESS_TOKEN, "instance_url": origin})
    catch_all(sf)

    try:
        SalesforceClient(org_at(url)).fetch_token()
    except SalesforceError as refused:
        assert refused.code == "DISALLOWED_HOST"
        assert list(sf.calls) == []
    else:
        assert [call.request.url for call in sf.calls] == [f"{origin}/services/oauth2/token"]


def test_a_trigger_for_a_hostile_org_fails_with_the_reason_and_sends_nothing(sf, enqueued):
    catch_all(sf)
    org = org_at("https://acme.my.salesforce.com.evil.com")
    trigger = services.trigger_create(flow=make_flow(org), inputs={"IndividualId": "003A"},
                                      source=Trigger.Source.API)

    trigger = services.trigger_dispatch(trigger_id=trigger.pk)

    assert (trigger.status, trigger.error_code) == (Trigger.Status.FAILED, "DISALLOWED_HOST")
    assert "not a Salesforce API host" in trigger.error_message and trigger.hint
    assert trigger.attempts == 1  # permanent: no retry
    assert list(sf.calls) == []


# Any URL built from pieces attackers like: if the check lets it through, the request goes to an ASCII
# Salesforce API host, and it is the same host for urllib's parser, for requests' (urllib3's) and for the check.
PIECES = st.sampled_from([
    "acme", ".my.salesforce.com", ".evil.com", "@", ":", "443", "8443", "\\", "/", "#", "?", "%2e", "%40", ".",
    "\u212a", "\u0430", "\uff0e", "\u200b", "\t", "\n", "[", "]", "::1", "127.0.0.1", "my", "salesforce", "com",
    "user", "-", "--dev.sandbox", "xn--", "\u0131", "\u017f",
])


@hypothesis_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scheme=st.sampled_from(["https://", "http://", "HTTPS://", "", "//"]), rest=st.lists(PIECES, max_size=8))
def test_whatever_passes_the_check_goes_to_a_salesforce_host(settings, scheme, rest):
    settings.FLOWGATE_EXTRA_SALESFORCE_HOSTS = []
    url = scheme + "".join(rest)
    try:
        origin = check_url(url)
    except DisallowedHost:
        return
    host = urlsplit(origin).hostname
    assert origin.isascii() and SALESFORCE_API_HOST.match(host), (url, origin)
    sent_to = parse_url(f"{origin}/services/oauth2/token").host
    assert sent_to == host


# --- redirects ---------------------------------------------------------------------------------------------

ELSEWHERE = {"other host": "https://evil.example.com/collect", "same host": f"{MY_DOMAIN}/services/oauth2/token2",
             "relative": "/services/oauth2/authorize"}


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("location", ELSEWHERE.values(), ids=ELSEWHERE.keys())
def test_a_redirect_from_the_token_endpoint_is_not_followed(sf, org, status, location):
    sf.post(TOKEN_URL, status=status, headers={"Location": location})
    catch_all(sf)

    failure = failure_of(SalesforceClient(org).fetch_token)

    assert (failure.code, failure.status, failure.permanent) == ("REDIRECT", status, True)
    assert [call.request.url for call in sf.calls] == [TOKEN_URL]  # the secret went out once, to Salesforce
    exchange = Exchange.objects.get()
    assert (exchange.kind, exchange.response_status) == (Exchange.Kind.TOKEN, status)
    assert CONSUMER_SECRET not in exchange.request_body


@pytest.mark.parametrize("location", ELSEWHERE.values(), ids=ELSEWHERE.keys())
def test_a_redirected_invoke_fails_the_trigger_and_is_not_followed(sf, flow, location, enqueued):
    sf.post(TOKEN_URL, json={"access_token": ACCESS_TOKEN, "instance_url": MY_DOMAIN})
    sf.post(INVOKE_URL, status=302, headers={"Location": location})
    catch_all(sf)
    trigger = services.trigger_create(flow=flow, inputs={"IndividualId": "003A"}, source=Trigger.Source.API)

    trigger = services.trigger_dispatch(trigger_id=trigger.pk)

    assert (trigger.status, trigger.error_code) == (Trigger.Status.FAILED, "REDIRECT")
    assert "not followed" in trigger.error_message
    assert [call.request.url for call in sf.calls] == [TOKEN_URL, INVOKE_URL]
    assert list(trigger.exchanges.values_list("kind", "response_status")) == [(Exchange.Kind.INVOKE, 302)]
    assert enqueued == []  # permanent: no retry carries the token anywhere either


# --- the token response's instance_url ----------------------------------------------------------------------

BAD_INSTANCE_URLS = {
    "other host": "https://evil.example.com",
    "suffix": "https://acme.my.salesforce.com.evil.com",
    "host as user": "https://acme.my.salesforce.com@evil.com",
    "backslash differential": "https://evil.com\\@acme.my.salesforce.com",
    "http": "http://acme.my.salesforce.com",
    "metadata": "http://169.254.169.254",
    "login host": "https://login.salesforce.com",
    "extra host spelling": "http://127.1:8765",
    "not a url": "javascript:alert(1)",
    "not a string": ["https://acme.my.salesforce.com"],
}


@pytest.mark.parametrize("instance_url", BAD_INSTANCE_URLS.values(), ids=BAD_INSTANCE_URLS.keys())
def test_a_token_whose_instance_url_is_not_allowed_is_refused_before_any_rest_call(sf, org, instance_url):
    sf.post(TOKEN_URL, json={"access_token": ACCESS_TOKEN, "instance_url": instance_url})
    catch_all(sf)
    client = SalesforceClient(org)

    failure = failure_of(lambda: client.invoke("On_Demand_Flow", [{"IndividualId": "003A"}]))

    assert (failure.code, failure.permanent) == ("DISALLOWED_INSTANCE_URL", True)
    assert [call.request.url for call in sf.calls] == [TOKEN_URL]  # the token never left for that host
    assert failure_of(client.fetch_token).code == "DISALLOWED_INSTANCE_URL"  # and it is not cached as good


def test_an_instance_url_is_reduced_to_its_origin(sf, org):
    """A path in instance_url cannot steer the REST calls elsewhere on the host."""
    sf.post(TOKEN_URL, json={"access_token": ACCESS_TOKEN,
                             "instance_url": "https://acme-api.my.salesforce.com/evil/path?x=1"})
    rest = sf.get("https://acme-api.my.salesforce.com/services/data/v65.0/limits/", json={})
    catch_all(sf)

    SalesforceClient(org).limits()

    assert rest.call_count == 1


def test_no_cookie_from_salesforce_is_sent_back(sf, org):
    """A Set-Cookie from a token answer is not replayed to later calls (the session ignores every cookie)."""
    sf.post(TOKEN_URL, json={"access_token": ACCESS_TOKEN, "instance_url": MY_DOMAIN},
            headers={"Set-Cookie": "sid=stolen; Domain=.salesforce.com; Path=/"})
    sf.get(f"{MY_DOMAIN}/services/data/v65.0/limits/", json={})

    SalesforceClient(org).limits()

    assert "Cookie" not in sf.calls[-1].request.headers


def test_no_client_app_secret_is_sent_to_an_org_that_changed_to_a_hostile_url(sf, org):
    """Credentials belong to an org; moving the org's URL (bypassing the form) does not move them."""
    catch_all(sf)
    Org.objects.filter(pk=org.pk).update(my_domain_url="https://evil.example.com")
    app = ExternalClientApp.objects.get(org=org)

    failure = failure_of(SalesforceClient(Org.objects.get(pk=org.pk), app).fetch_token)

    assert failure.code == "DISALLOWED_HOST"
    assert list(sf.calls) == []
