"""Kafka SASL/TLS settings: one value, one mapping to aiokafka, bad combinations refused."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from orchestrator.config import ConfigError, load_config, redact
from orchestrator.config.kafka_auth import KafkaSecurityConfig, kafka_security
from orchestrator.events import KafkaSecurity, KafkaSecurityError

SCRAM_ENV = {
    "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "KAFKA_SASL_USERNAME": "app",
    "KAFKA_SASL_PASSWORD": "s3cret",
}


def test_plaintext_is_the_default_and_adds_nothing_but_the_protocol() -> None:
    assert KafkaSecurity().client_kwargs() == {"security_protocol": "PLAINTEXT"}
    assert KafkaSecurity.from_env({}).client_kwargs() == {"security_protocol": "PLAINTEXT"}


def test_scram_from_env_maps_to_aiokafka_kwargs() -> None:
    security = KafkaSecurity.from_env(SCRAM_ENV)
    assert security.client_kwargs() == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "app",
        "sasl_plain_password": "s3cret",
    }
    assert "s3cret" not in repr(security)
    assert security.describe() == "SASL_PLAINTEXT SCRAM-SHA-512 as app"


def test_password_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    env = {k: v for k, v in SCRAM_ENV.items() if k != "KAFKA_SASL_PASSWORD"}
    security = KafkaSecurity.from_env({**env, "KAFKA_SASL_PASSWORD_FILE": str(secret)})
    assert security.client_kwargs()["sasl_plain_password"] == "from-file"


def test_sasl_ssl_builds_a_tls_context_with_the_ca_file() -> None:
    ca = ssl.get_default_verify_paths().cafile
    if ca is None:
        pytest.skip("no system CA file to point at")
    security = KafkaSecurity.from_env(
        {**SCRAM_ENV, "KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SSL_CAFILE": ca}
    )
    kwargs = security.client_kwargs()
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)
    assert kwargs["ssl_context"].check_hostname
    assert kwargs["security_protocol"] == "SASL_SSL"


@pytest.mark.parametrize(
    ("env", "option"),
    [
        ({"KAFKA_SECURITY_PROTOCOL": "KERBEROS"}, "security_protocol"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}, "sasl_mechanism"),
        ({**SCRAM_ENV, "KAFKA_SASL_MECHANISM": "GSSAPI"}, "sasl_mechanism"),
        ({**SCRAM_ENV, "KAFKA_SASL_PASSWORD": ""}, "password"),
        ({**SCRAM_ENV, "KAFKA_SASL_USERNAME": ""}, "username"),
        ({"KAFKA_SASL_MECHANISM": "SCRAM-SHA-256"}, "sasl_mechanism"),
        ({"KAFKA_SSL_CAFILE": "/etc/hostname"}, "ssl_cafile"),
        ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": "/nonexistent"}, "ssl_cafile"),
        ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CERTFILE": "/etc/hostname"}, "ssl_keyfile"),
    ],
)
def test_an_inconsistent_combination_is_refused_naming_the_option(
    env: dict[str, str], option: str
) -> None:
    with pytest.raises(KafkaSecurityError) as caught:
        KafkaSecurity.from_env(env)
    assert caught.value.option == option
    assert option in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_yaml_block_merges_with_env_and_keeps_no_password() -> None:
    loaded = load_config(
        "state_management:\n"
        "  event_store:\n"
        "    kafka_security:\n"
        "      security_protocol: SASL_PLAINTEXT\n"
        "      sasl_mechanism: SCRAM-SHA-256\n"
        "      sasl_username: pipeline\n"
    )
    block = loaded.settings.state_management.event_store.kafka_security
    security = kafka_security(block, {"KAFKA_SASL_PASSWORD": "pw"})
    assert security.client_kwargs()["sasl_mechanism"] == "SCRAM-SHA-256"
    assert security.client_kwargs()["sasl_plain_username"] == "pipeline"
    # the environment wins over the block
    assert kafka_security(block, {**SCRAM_ENV}).username == "app"
    with pytest.raises(KafkaSecurityError, match="password"):
        kafka_security(block, {})
    dumped = redact(loaded.settings.model_dump())
    assert "pw" not in str(dumped["state_management"]["event_store"]["kafka_security"])


@pytest.mark.parametrize(
    ("block", "option"),
    [
        ("security_protocol: SASL_PLAINTEXT\n      sasl_username: u\n", "sasl_mechanism"),
        ("sasl_mechanism: SCRAM-SHA-512\n", "sasl_mechanism"),
        ("security_protocol: PLAINTEXT\n      ssl_cafile: /etc/hostname\n", "ssl_cafile"),
        ("sasl_password: hunter2\n", "sasl_password"),
        ("security_protocol: TLS\n", "security_protocol"),
    ],
)
def test_config_load_refuses_a_bad_block_naming_the_option(block: str, option: str) -> None:
    text = f"state_management:\n  event_store:\n    kafka_security:\n      {block}"
    with pytest.raises(ConfigError) as caught:
        load_config(text)
    assert option in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_the_config_model_defaults_to_plaintext() -> None:
    assert kafka_security(KafkaSecurityConfig(), {}) == KafkaSecurity()
