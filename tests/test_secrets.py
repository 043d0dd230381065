"""Secret settings: deployed stages refer to Secrets Manager and read the value at run time
(cached a few minutes, so a rotation needs no redeploy); locally they come from the environment."""

import json
from datetime import datetime, timedelta

import boto3
import pytest

from chalicelib import secrets, settings, wiring

pytestmark = pytest.mark.usefixtures("aws")  # in-process AWS (moto) with every table

SECRET = "amocrm-integration/prod/amocrm"


@pytest.fixture
def deployed(monkeypatch):
    """The Lambda environment of a deployed stage: variables that say where each secret is."""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "amocrm-integration-prod-APIHandler")
    monkeypatch.setenv("AMO_CLIENT_SECRET", f"secretsmanager:{SECRET}#AMO_CLIENT_SECRET")
    monkeypatch.setenv("AMO_LONG_LIVED_TOKEN", f"secretsmanager:{SECRET}#AMO_LONG_LIVED_TOKEN")
    monkeypatch.setenv(
        "MAIN_BACKEND_API_KEY", "secretsmanager:amocrm-integration/prod/main-backend#MAIN_BACKEND_API_KEY"
    )
    client = boto3.client("secretsmanager")
    client.create_secret(Name=SECRET, SecretString=json.dumps({"AMO_CLIENT_SECRET": "sm-client-secret"}))
    client.create_secret(
        Name="amocrm-integration/prod/main-backend", SecretString=json.dumps({"MAIN_BACKEND_API_KEY": "sm-api-key"})
    )
    return client


def test_deployed_stages_read_secrets_from_secrets_manager(deployed):
    assert settings.amo_client_secret() == "sm-client-secret"
    assert settings.main_backend_api_key() == "sm-api-key"
    assert settings.main_backend_outbound_api_key() == "sm-api-key"  # falls back to the API key
    assert wiring.oauth_credentials().client_secret == "sm-client-secret"
    assert settings.amo_long_lived_token() == ""  # optional, and not in the secret: unset


def test_locally_secrets_come_from_the_environment():
    assert settings.amo_client_secret() == "client-secret-xyz"  # tests/conftest.py's environment
    assert settings.main_backend_api_key() == "main-backend-key"


def test_a_rotated_secret_applies_once_the_cache_expires_without_a_redeploy(deployed):
    assert settings.amo_client_secret() == "sm-client-secret"
    deployed.put_secret_value(SecretId=SECRET, SecretString=json.dumps({"AMO_CLIENT_SECRET": "rotated"}))
    assert settings.amo_client_secret() == "sm-client-secret"  # cached: one read per few minutes, not per request

    cache = secrets._provider().store  # CACHE_SECONDS later:
    for key, entry in list(cache.items()):
        cache[key] = entry._replace(ttl=datetime.now() - timedelta(seconds=1))
    assert settings.amo_client_secret() == "rotated"


def test_a_missing_secret_or_key_is_a_config_error_that_names_the_variable_not_a_value(deployed, monkeypatch):
    monkeypatch.setenv("AMO_CLIENT_SECRET", "secretsmanager:amocrm-integration/prod/nope#AMO_CLIENT_SECRET")
    with pytest.raises(
        settings.ConfigError, match="AMO_CLIENT_SECRET: cannot read secret amocrm-integration/prod/nope"
    ):
        settings.amo_client_secret()
    monkeypatch.setenv("AMO_CLIENT_SECRET", f"secretsmanager:{SECRET}#NO_SUCH_KEY")
    with pytest.raises(settings.ConfigError, match="has no key NO_SUCH_KEY"):
        settings.amo_client_secret()


def test_status_flags_a_secret_kept_in_the_lambda_configuration(deployed, monkeypatch):
    monkeypatch.setenv("AMO_WEBHOOK_SECRET", "plain-text-secret")
    problems = settings.validate_all()
    assert any(p.startswith("AMO_WEBHOOK_SECRET holds its value in the Lambda configuration") for p in problems)
    assert not any("plain-text-secret" in p for p in problems)
    assert not any(p.startswith("AMO_CLIENT_SECRET") for p in problems)
