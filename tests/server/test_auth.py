"""Token auth: health is open, everything else needs the bearer token; public binds need one."""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests
from server_helpers import FAST, REPO

from bump_backend.server import ServerConfig
from bump_backend.server.config import is_loopback
from bump_client.client import AuthError, BumpClient

TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
def secured(make_server):
    return make_server(token=TOKEN)


def test_health_without_the_token_says_only_that_it_is_alive(secured):
    document = requests.get(secured.url + "/v1/health", timeout=10).json()
    assert set(document) == {"status", "version", "contract_version", "auth_required"}
    wrong = requests.get(secured.url + "/v1/health", headers={"Authorization": "Bearer wrong-token-xx"}, timeout=10)
    assert set(wrong.json()) == set(document)
    health = BumpClient(secured.url).health()
    assert health.auth_required and health.status == "ok" and health.model is None and health.capabilities is None
    full = BumpClient(secured.url, token=TOKEN).health()
    assert full.auth_required and full.model_state is not None and full.capabilities is not None
    assert full.public() == health


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/models", "/v1/jobs/j20250101000000-deadbeef", "/openapi.json",
                                  "/docs"])
def test_everything_else_needs_it(secured, path):
    for headers in ({}, {"Authorization": "Bearer wrong-token-xx"}, {"Authorization": TOKEN}):
        response = requests.get(secured.url + path, headers=headers, timeout=10)
        assert response.status_code == 401, (path, headers)
        assert response.json()["error"]["code"] == "unauthorized"
    ok = requests.get(secured.url + path, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert ok.status_code in (200, 404)


def test_client_with_and_without_token(secured, images, tmp_path):
    with pytest.raises(AuthError):
        BumpClient(secured.url).submit(images["png"], FAST)
    with pytest.raises(AuthError):
        BumpClient(secured.url, token="nope-nope-nope").jobs()
    client = BumpClient(secured.url, token=TOKEN)
    result = client.run(images["png"], tmp_path, FAST)
    assert result.image.is_file()


def test_public_bind_refused_without_token(tmp_path):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    with pytest.raises(ValueError, match="without a token"):
        ServerConfig(host="0.0.0.0", data_dir=tmp_path).check()
    ServerConfig(host="0.0.0.0", token=TOKEN, data_dir=tmp_path).check()
    proc = subprocess.run([sys.executable, "-m", "bump_backend", "serve", "--host", "0.0.0.0", "--data-dir",
                           str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert proc.returncode == 2
    assert "refusing to bind 0.0.0.0 without a token" in proc.stderr
