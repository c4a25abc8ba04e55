"""`python -m attune_notifier` starts the service as deployed, and the settings refuse unsafe secrets."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from attune_contracts.credentials import development_public_keys, generate_key_pair
from attune_notifier.config import NotifierSettings
from attune_notifier.webpush import generate_private_key_text
from attune_runtime.tansu import free_port
from cryptography.fernet import Fernet
from pydantic import ValidationError


@pytest.mark.unit
def test_production_refuses_development_and_placeholder_secrets() -> None:
    keys = generate_key_pair("k1")[1]
    with pytest.raises(ValidationError, match="CREDENTIAL_KEYS must be set"):
        NotifierSettings(environment="production", link_keys="k1:" + "y" * 32, link_kid="k1",
                         channel_key=Fernet.generate_key().decode())
    with pytest.raises(ValidationError, match="development key"):
        NotifierSettings(environment="production", credential_keys=f"{keys},{development_public_keys()}")
    with pytest.raises(ValidationError, match="CHANNEL_KEY is unset or holds a development key"):
        NotifierSettings(environment="production", credential_keys=keys, link_keys="k1:" + "y" * 32, link_kid="k1")
    with pytest.raises(ValidationError, match="Fernet"):
        NotifierSettings(environment="development", channel_key="not-a-fernet-key-but-long-enough")
    dlq = Fernet.generate_key().decode()
    with pytest.raises(ValidationError, match=r"VAPID_PRIVATE_KEY is missing or a placeholder|VAPID_PRIVATE_KEY is "
                                              r"unset or holds a development key"):
        NotifierSettings(environment="production", credential_keys=keys, link_keys="k1:" + "y" * 32, link_kid="k1",
                         channel_key=Fernet.generate_key().decode(), dead_letter_key=dlq)
    with pytest.raises(ValidationError, match="P-256") as refused:
        NotifierSettings(environment="development", vapid_private_key="not-a-key-but-quite-long-enough")
    assert "not-a-key" not in str(refused.value.errors(include_input=False))  # as load_settings prints it
    vapid = generate_private_key_text()
    with pytest.raises(ValidationError, match="ATTUNE_NOTIFIER_DEAD_LETTER_KEY is missing"):
        NotifierSettings(environment="production", credential_keys=keys, link_keys="k1:" + "y" * 32, link_kid="k1",
                         channel_key=Fernet.generate_key().decode(), vapid_private_key=vapid)
    with pytest.raises(ValidationError, match="ATTUNE_NOTIFIER_FIELD_KEYS is missing"):
        NotifierSettings(environment="production", credential_keys=keys, link_keys="k1:" + "y" * 32, link_kid="k1",
                         channel_key=Fernet.generate_key().decode(), vapid_private_key=vapid, dead_letter_key=dlq)
    field_keys = "k1:" + base64.urlsafe_b64encode(os.urandom(32)).decode()
    ok = NotifierSettings(environment="production", credential_keys=keys, link_keys="k1:" + "y" * 32, link_kid="k1",
                          channel_key=Fernet.generate_key().decode(), vapid_private_key=vapid, dead_letter_key=dlq,
                          field_keys=field_keys)
    assert vapid not in repr(ok) and dlq not in repr(ok) and field_keys not in repr(ok)
    assert ok.link_key_map() == {"k1": "y" * 32} and ok.http_port == 8103
    assert "y" * 32 not in repr(ok)


@pytest.mark.integration
def test_python_dash_m_runs_the_service_and_stops_cleanly(kafka_bootstrap: str, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "ATTUNE_NOTIFIER_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "ATTUNE_NOTIFIER_HTTP_PORT": str(port),
        "ATTUNE_NOTIFIER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/data/notifier.db",
        "ATTUNE_NOTIFIER_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "ATTUNE_NOTIFIER_CONSUMER_GROUP": f"attune-notifier-{uuid.uuid4().hex[:6]}",
        "ATTUNE_NOTIFIER_ENVIRONMENT": "development",
    }
    process = subprocess.Popen([sys.executable, "-m", "attune_notifier"], env=env, cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        ready = False
        while time.monotonic() < deadline and process.poll() is None:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                ready = False
            if ready:
                break
            time.sleep(0.2)
        assert ready, "the notifier did not become ready"
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json()["service"] == "notifier"
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert "attune_notifier_deliveries_total" in metrics and "member_id" not in metrics
        assert httpx.get(f"http://127.0.0.1:{port}/v1/members/{uuid.uuid4()}/export").status_code == 401
        assert (tmp_path / "data" / "notifier.db").exists()  # migrated at start-up
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            _, stderr = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
    # uvicorn shuts down gracefully, then re-raises the signal it caught (so -SIGTERM is a clean exit).
    assert process.returncode in (0, -signal.SIGTERM), stderr[-2000:]
    assert "Application shutdown complete" in stderr
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert lines and all(line["service"] == "notifier" for line in lines)
