"""A throw-away OpenLDAP server (Debian's slapd) for the ``ldap`` plugin's tests.

It runs from a temp folder with a ``slapd.conf`` of its own (``slapd -f``), an mdb database, a
test CA and server certificate made with ``cryptography``, and listens on 127.0.0.1 only: plain
LDAP (StartTLS offered) and LDAPS on two free ports. Outside CI a missing slapd skips the test
with the install command; under ``CI=true`` it fails.
"""

from __future__ import annotations

import datetime
import ipaddress
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.e2e.processes import free_port, stop
from tests.e2e.proxies import require_binary, wait_port

SLAPD = "/usr/sbin/slapd"
SUFFIX = "dc=example,dc=com"
ADMIN_DN = f"cn=admin,{SUFFIX}"
ADMIN_PASSWORD = "admin-secret-for-tests"
SCHEMAS = ("core", "cosine", "inetorgperson", "nis")

CONF = """
{schemas}
pidfile {tmp}/slapd.pid
argsfile {tmp}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
TLSCACertificateFile {tmp}/ca.pem
TLSCertificateFile {tmp}/server.pem
TLSCertificateKeyFile {tmp}/server.key
database mdb
maxsize 16777216
suffix "{suffix}"
rootdn "{admin}"
rootpw {password}
directory {tmp}/db
access to attrs=userPassword by anonymous auth by * none
access to * by * read
"""


@dataclass(frozen=True)
class Slapd:
    port: int
    tls_port: int
    ca_file: Path
    tmp: Path

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.tls_port}"


def require_slapd() -> str:
    return require_binary(SLAPD, install="DEBIAN_FRONTEND=noninteractive apt-get install -y slapd ldap-utils")


def _certificates(tmp: Path) -> None:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tokenward test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    (tmp / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "server.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (tmp / "server.key").chmod(0o600)


@contextmanager
def run_slapd(tmp: Path) -> Iterator[Slapd]:
    """slapd on two free loopback ports, with an empty ``dc=example,dc=com`` (add entries with :func:`populate`)."""
    binary = require_slapd()
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "db").mkdir()
    _certificates(tmp)
    schemas = "\n".join(f"include /etc/ldap/schema/{name}.schema" for name in SCHEMAS)
    conf = tmp / "slapd.conf"
    conf.write_text(CONF.format(schemas=schemas, tmp=tmp, suffix=SUFFIX, admin=ADMIN_DN, password=ADMIN_PASSWORD))
    port, tls_port = free_port(), free_port()
    urls = f"ldap://127.0.0.1:{port}/ ldaps://127.0.0.1:{tls_port}/"
    log = tmp / "slapd.log"
    with log.open("wb") as err:
        # -d 0: stay in the foreground (so the test owns the process) without debug output.
        proc = subprocess.Popen([binary, "-f", str(conf), "-h", urls, "-d", "0"], stdout=err, stderr=err)
    try:
        wait_port(port, proc, log, deadline=60, what="slapd")
        wait_port(tls_port, proc, log, deadline=60, what="slapd")
        yield Slapd(port, tls_port, tmp / "ca.pem", tmp)
    finally:
        stop(proc)


def populate(server: Slapd, entries: list[tuple[str, list[str], dict[str, object]]]) -> None:
    """Add ``(dn, object classes, attributes)`` as the directory's admin."""
    from tokenward.forwardauth.plugins.ldap import _ldap3

    ldap3 = _ldap3()
    conn = ldap3.Connection(ldap3.Server("127.0.0.1", port=server.port), ADMIN_DN, ADMIN_PASSWORD, auto_bind=True)
    try:
        for dn, classes, attributes in entries:
            assert conn.add(dn, classes, attributes), (dn, conn.result)
    finally:
        conn.unbind()
