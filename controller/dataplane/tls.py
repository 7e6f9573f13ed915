"""The certificates of one deployment's P4Runtime connections: a CA, a server certificate per switch and a
client certificate for the controller, made with the `cryptography` package into a directory the caller names.

Each switch serves P4Runtime with its certificate and accepts only clients whose certificate the same CA
signed; the controller presents its client certificate and trusts only switches that CA signed. Keys are
ECDSA P-256 (what gRPC's TLS and BMv2's both take) and are written with mode 0600, in a directory of mode
0700. The CA's private key is never written: every certificate of the deployment is issued in one call,
so nobody, the controller included, can issue another one later; a new deployment makes a new CA and the
old certificates stop being trusted. Nothing here is meant to be committed: the files are made at
deployment (`srem testbed up`) and live with it.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from controller.errors import SremError

CA_CERT = "ca.pem"
CONTROLLER = "controller"
"""The file stem and common name of the controller's client certificate."""
VALID_DAYS = 365
CLOCK_SKEW = datetime.timedelta(minutes=5)
"""Certificates are valid from this long before they are made: a container's clock may lag the one that made them."""
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_DNS = re.compile(r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")


@dataclass(frozen=True)
class TlsFiles:
    """The PEM files one end of a mutually authenticated TLS connection needs: the CA to verify the peer with,
    and its own certificate and private key."""

    ca_cert: Path
    cert: Path
    key: Path

    def read(self) -> tuple[bytes, bytes, bytes]:
        """(CA certificates, certificate, key) as PEM bytes, checked here so that a wrong file is named in one line
        instead of failing the TLS handshake later: SremError for a file that cannot be read, is not PEM of its
        kind, a certificate outside its validity period, or a key that is not the certificate's."""
        ca, cert, key = (_read(path) for path in (self.ca_cert, self.cert, self.key))
        try:
            x509.load_pem_x509_certificates(ca)
        except ValueError:
            raise SremError("not a PEM certificate", where=self.ca_cert) from None
        try:
            certificate = x509.load_pem_x509_certificate(cert)
        except ValueError:
            raise SremError("not a PEM certificate", where=self.cert) from None
        try:
            private_key = serialization.load_pem_private_key(key, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise SremError("not an unencrypted PEM private key", where=self.key) from None
        now = datetime.datetime.now(datetime.timezone.utc)
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise SremError(f"valid only from {certificate.not_valid_before_utc:%Y-%m-%d %H:%M} to "
                            f"{certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC", where=self.cert)
        if _public(private_key.public_key()) != _public(certificate.public_key()):
            raise SremError(f"not the key of certificate {self.cert}", where=self.key)
        return ca, cert, key


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SremError(f"cannot read it ({exc.strerror or exc})", where=path) from None


def _public(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True)
class Deployment:
    """Where one deployment's certificates are: `switch(name)` for a switch's server side, `controller()` for the client."""

    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / CA_CERT

    def switch(self, name: str) -> TlsFiles:
        return self._files(f"switch-{name}")

    def controller(self) -> TlsFiles:
        return self._files(CONTROLLER)

    def _files(self, stem: str) -> TlsFiles:
        return TlsFiles(self.ca_cert, self.directory / f"{stem}.pem", self.directory / f"{stem}.key")


def create(directory: Path, switches: Mapping[str, Sequence[str]], valid_days: int = VALID_DAYS) -> Deployment:
    """A new CA and its certificates in `directory`: one server certificate per switch, for the names and
    addresses in `switches[name]` (what the controller dials: a host name or an IP address), and the
    controller's client certificate. The directory is created, or must hold nothing but a previous
    deployment's files, which are replaced. SremError for a bad switch name, host name or address."""
    if not switches:
        raise SremError("no switch to make a certificate for", where=directory)
    for name, hosts in switches.items():
        if not _NAME.fullmatch(name):
            raise SremError(f"switch name {name!r} is not a file name of letters, digits, '_', '.' and '-'", where=directory)
        if not hosts:
            raise SremError(f"switch {name} has no host name or address to put in its certificate", where=directory)
    if valid_days < 1:
        raise SremError(f"certificates must be valid for at least one day (got {valid_days})", where=directory)
    alt_names = {name: [_alt_name(host, name) for host in hosts] for name, hosts in switches.items()}
    deployment = Deployment(directory)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _ca(ca_key, now, valid_days)
    try:
        _prepare(directory)
        _write(deployment.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)
        for name, names in alt_names.items():
            _issue(deployment.switch(name), f"switch {name}", names, ExtendedKeyUsageOID.SERVER_AUTH, ca_key, ca_cert, now,
                   valid_days)
        _issue(deployment.controller(), "srem controller", [x509.DNSName(CONTROLLER)], ExtendedKeyUsageOID.CLIENT_AUTH,
               ca_key, ca_cert, now, valid_days)
    except OSError as exc:
        raise SremError(f"cannot write certificates there ({exc.strerror or exc})", where=directory) from None
    return deployment


def _alt_name(host: str, switch: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not _DNS.fullmatch(host):
        raise SremError(f"{host!r} is neither an IP address nor a host name", where=f"switch {switch}")
    return x509.DNSName(host.lower())


def _prepare(directory: Path) -> None:
    """Create the directory (0700), or empty it of a previous deployment's files (so none of a switch no longer
    there stays); refused if it holds anything else: it never deletes a stranger's file."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    files = list(directory.iterdir())
    if foreign := sorted(path.name for path in files if not (path.is_file() and _ours(path.name))):
        raise SremError(f"holds files that are not certificates of a deployment ({', '.join(foreign[:5])}); name an empty "
                        "or new directory", where=directory)
    for path in files:
        path.unlink()
    directory.chmod(0o700)


def _ours(name: str) -> bool:
    """A name this module writes, or the temporary name it writes it under first."""
    if name.startswith(".") and name.endswith(".tmp"):
        name = name[1:-len(".tmp")]
    if name == CA_CERT:
        return True
    stem, _, suffix = name.rpartition(".")
    return suffix in ("pem", "key") and (stem == CONTROLLER or (stem.startswith("switch-") and
                                                                bool(_NAME.fullmatch(stem[len("switch-"):]))))


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write through a temporary file created with `mode`, so a key is never readable by others, not even briefly."""
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "wb") as out:
        out.write(data)
    os.replace(temporary, path)


def _subject(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "srem deployment"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _ca(key: ec.EllipticCurvePrivateKey, now: datetime.datetime, valid_days: int) -> x509.Certificate:
    name = _subject("srem deployment CA")
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW).not_valid_after(now + datetime.timedelta(days=valid_days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))


def _issue(files: TlsFiles, common_name: str, alt_names: list[x509.GeneralName], usage: x509.ObjectIdentifier,
           ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, now: datetime.datetime, valid_days: int) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_subject(common_name)).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW).not_valid_after(now + datetime.timedelta(days=valid_days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    _write(files.key, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()), 0o600)
    _write(files.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
