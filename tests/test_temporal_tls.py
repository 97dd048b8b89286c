"""Temporal anywhere: the connection comes from `temporalio.envconfig` (TEMPORAL_TLS_* and
the rest), so a worker reaches a cluster over TLS with a client certificate (mTLS). The dev
server speaks no TLS, so a TLS terminator that demands a client certificate signed by the
test CA stands in front of it, as a self-hosted cluster's frontend would."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from temporalio.common import WorkflowIDConflictPolicy

from journeys.schemas.settings import Settings
from journeys.stack.embedded import Unreachable, wait_for_temporal


def _certificate(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    signer: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(signer, hashes.SHA256())


def _write(
    folder: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> None:
    (folder / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def make_pki(folder: Path) -> None:
    """ca.pem, server.pem/.key and client.pem/.key, the last two signed by the CA."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("journeys test CA", ca_key, None, ca_key, ca=True)
    _write(folder, "ca", ca, ca_key)
    for name in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        _write(folder, name, _certificate(name, key, ca, ca_key), key)


@contextlib.asynccontextmanager
async def tls_frontend(pki: Path, upstream: str) -> AsyncIterator[str]:
    """A TLS (HTTP/2) endpoint that requires a client certificate and forwards to
    `upstream`; yields its address."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=pki / "ca.pem")
    context.load_cert_chain(pki / "server.pem", pki / "server.key")
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["h2"])
    host, port = upstream.rsplit(":", 1)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    handlers: set[asyncio.Task[None]] = set()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        except asyncio.CancelledError:
            up_writer.close()
            writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0, ssl=context)
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        for handler in handlers:  # connections still open end with the frontend
            handler.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    make_pki(tmp_path)
    return tmp_path


async def test_a_process_reaches_temporal_over_mtls_from_envconfig(
    pki: Path, temporal_address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with tls_frontend(pki, temporal_address) as frontend:
        monkeypatch.setenv("TEMPORAL_ADDRESS", frontend)
        monkeypatch.setenv("TEMPORAL_NAMESPACE", "default")
        monkeypatch.setenv("TEMPORAL_TLS_SERVER_CA_CERT_PATH", str(pki / "ca.pem"))
        monkeypatch.setenv("TEMPORAL_TLS_SERVER_NAME", "localhost")
        monkeypatch.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", str(pki / "client.pem"))
        monkeypatch.setenv("TEMPORAL_TLS_CLIENT_KEY_PATH", str(pki / "client.key"))
        settings = Settings(tracing=False, metrics_address=None)
        client = await wait_for_temporal(settings, timeout=10)
        assert client.service_client.config.target_host == frontend
        handle = await client.start_workflow(
            "not-registered",
            id="tls-check",
            task_queue="tls-nobody-polls",
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        described = await handle.describe()
        assert described.workflow_type == "not-registered"
        await handle.terminate()

        # Without the client certificate, the frontend refuses the handshake.
        monkeypatch.delenv("TEMPORAL_TLS_CLIENT_CERT_PATH")
        monkeypatch.delenv("TEMPORAL_TLS_CLIENT_KEY_PATH")
        with pytest.raises(Unreachable, match=f"cannot reach Temporal at {frontend}"):
            await wait_for_temporal(settings, timeout=1)


async def test_a_missing_certificate_file_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEMPORAL_TLS_SERVER_CA_CERT_PATH", str(tmp_path / "absent.pem"))
    with pytest.raises(Unreachable) as raised:
        await wait_for_temporal(Settings(tracing=False, metrics_address=None), timeout=30)
    assert str(raised.value) == (
        f"cannot connect to Temporal: cannot read {tmp_path / 'absent.pem'}: "
        "No such file or directory"
    )
