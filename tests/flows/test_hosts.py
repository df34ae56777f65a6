"""Which URLs may receive a Salesforce secret (salesforce-api.md section 6)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from flows.hosts import DisallowedHost, check_url, validate_my_domain_url
from flows.models import Org


@pytest.mark.parametrize("url", [
    "https://acme.my.salesforce.com",
    "https://acme--dev.sandbox.my.salesforce.com",
    "https://acme.develop.my.salesforce.com",
    "https://acme.scratch.my.salesforce.com",
    "https://acme.patch.my.salesforce.com",
    "https://acme.demo.my.salesforce.com",
    "https://acme.trailblaze.my.salesforce.com",
    "https://acme.free.my.salesforce.com",
    "https://acme-dev-ed.develop.my.salesforce.com",
    "https://acme-dev-ed.my.salesforce.com",
    "https://acme.my-salesforce.com",
    "https://x.my.salesforce.mil",
    "https://x.my.sfcrmproducts.cn",
    "https://ACME.My.Salesforce.com",
    "https://acme.my.salesforce.com:443",
    "https://acme.my.salesforce.com/",
])
def test_salesforce_api_hosts_are_accepted(url):
    assert check_url(url) == "https://" + url.split("://")[1].split(":")[0].split("/")[0].lower()
    validate_my_domain_url(url)


@pytest.mark.parametrize("url", [
    "http://acme.my.salesforce.com",
    "https://login.salesforce.com",
    "https://test.salesforce.com",
    "https://acme.lightning.force.com",
    "https://acme.my.site.com",
    "https://acme.my.salesforce-setup.com",
    "https://evil.com",
    "https://acme.my.salesforce.com.evil.com",
    "https://evilmy.salesforce.com",
    "https://user@acme.my.salesforce.com",
    "https://user:pw@acme.my.salesforce.com",
    "https://acme.my.salesforce.com@evil.com",
    "https://acme.my.salesforce.com:8443",
    "https://acme.my.salesforce.com:notaport",
    "ftp://acme.my.salesforce.com",
    "acme.my.salesforce.com",
    "",
])
def test_other_hosts_are_refused(url):
    with pytest.raises(DisallowedHost):
        check_url(url)
    with pytest.raises(ValidationError):
        validate_my_domain_url(url)


def test_extra_hosts_from_settings_may_use_http(settings):
    settings.FLOWGATE_EXTRA_SALESFORCE_HOSTS = ["emulator.local", "LocalHost:8765"]

    assert check_url("http://emulator.local:9000") == "http://emulator.local:9000"  # no port listed: any port
    assert check_url("http://emulator.local") == "http://emulator.local"
    assert check_url("http://localhost:8765") == "http://localhost:8765"
    for refused in ("http://localhost:8766", "http://localhost", "http://other.local",
                    "http://user@emulator.local", "ftp://emulator.local"):
        with pytest.raises(DisallowedHost):
            check_url(refused)


def test_without_extra_hosts_the_emulator_is_refused(settings):
    settings.FLOWGATE_EXTRA_SALESFORCE_HOSTS = []

    with pytest.raises(DisallowedHost):
        check_url("http://127.0.0.1:8765")


def test_org_validation_lists_the_accepted_forms(db):
    org = Org(name="Acme", slug="acme", my_domain_url="https://login.salesforce.com")

    with pytest.raises(ValidationError) as caught:
        org.full_clean()

    [message] = caught.value.message_dict["my_domain_url"]
    for form in ("NAME.my.salesforce.com", "NAME--SANDBOX.sandbox.my.salesforce.com", "develop", "scratch",
                 "my.salesforce.mil", "my.sfcrmproducts.cn", "not login.salesforce.com"):
        assert form in message


@pytest.mark.parametrize("url", ["https://acme.my.salesforce.com/lightning/page/home",
                                 "https://acme.my.salesforce.com/services/oauth2/token",
                                 "https://acme.my.salesforce.com?x=1"])
def test_a_path_or_query_is_refused(db, url):
    with pytest.raises(ValidationError) as caught:
        Org(name="Acme", slug="acme", my_domain_url=url).full_clean()

    assert "without a path" in caught.value.message_dict["my_domain_url"][0]


def test_a_trailing_slash_is_dropped_on_save(db):
    org = Org.objects.create(name="Acme", slug="acme", my_domain_url="https://acme.my.salesforce.com/")

    assert Org.objects.get(pk=org.pk).my_domain_url == "https://acme.my.salesforce.com"
