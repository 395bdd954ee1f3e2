"""`tokenward serve` over HTTPS with a certificate made on the spot."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import sys
import time
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.e2e.processes import env_for, free_port, process_log, start_process, stop, tokenward
from tests.helpers import init_data_dir


def make_cert(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(
        fd,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    os.close(fd)
    return cert_path, key_path


def test_serve_https(tmp_path: Path) -> None:
    data = tmp_path / "data"
    init_data_dir(data, "tls.example.com")
    cert, key = make_cert(tmp_path)
    port = free_port()
    proc = start_process(
        [
            sys.executable,
            "-m",
            "tokenward",
            "serve",
            "--port",
            str(port),
            "--tls-cert",
            str(cert),
            "--tls-key",
            str(key),
        ],
        env=env_for(data),
    )
    try:
        context = ssl.create_default_context(cafile=str(cert))
        body = None
        end = time.monotonic() + 180  # a readiness wait, generous for a loaded machine
        while time.monotonic() < end:
            try:
                body = httpx.get(f"https://127.0.0.1:{port}/api/resourceinfo", verify=context, timeout=1).text
                break
            except httpx.TransportError:
                if proc.poll() is not None:
                    raise AssertionError(process_log(proc) or "exited") from None
                time.sleep(0.1)
        assert body == "tls.example.com"
    finally:
        stop(proc)


def test_serve_refuses_readable_tls_key(tmp_path: Path) -> None:
    data = tmp_path / "data"
    init_data_dir(data)
    cert, key = make_cert(tmp_path)
    key.chmod(0o644)
    result = tokenward(
        "serve", "--port", str(free_port()), "--tls-cert", str(cert), "--tls-key", str(key), env=env_for(data)
    )
    assert result.returncode == 1 and f"chmod 600 {key}" in result.stderr


def test_tls_options_must_come_together(tmp_path: Path) -> None:
    data = tmp_path / "data"
    init_data_dir(data)
    result = tokenward("serve", "--tls-cert", str(tmp_path / "x.pem"), env=env_for(data))
    assert result.returncode == 1 and "TOKENWARD_TLS_KEY" in result.stderr
