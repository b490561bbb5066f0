"""TLS for a --public front door: a provided certificate, or a self-signed one made here.

A self-signed certificate still encrypts; clients trust it by its SHA-256 fingerprint (printed
by `up`/`render`) or by the certificate file itself (`curl --cacert front/tls.crt`).
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from rentstack.errors import RentstackError

SELF_SIGNED_DAYS = 825
"""Validity of a generated certificate: the longest most TLS clients accept."""


@dataclass(frozen=True)
class TlsFiles:
    cert_pem: bytes
    key_pem: bytes

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the certificate (DER), as `openssl x509 -fingerprint -sha256` prints it."""
        cert = x509.load_pem_x509_certificate(self.cert_pem)
        return ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))


def self_signed(names: list[str]) -> TlsFiles:
    """A new P-256 key and a certificate for `names` (host names or IP addresses)."""
    key = ec.generate_private_key(ec.SECP256R1())
    alt: list[x509.GeneralName] = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else "rentstack")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return TlsFiles(cert_pem=cert.public_bytes(serialization.Encoding.PEM), key_pem=key_pem)


def load_provided(cert_path: str, key_path: str) -> TlsFiles:
    """A user's certificate and key, checked to be PEM that belong together."""
    try:
        cert_pem, key_pem = Path(cert_path).read_bytes(), Path(key_path).read_bytes()
    except OSError as exc:
        raise RentstackError(f"tls: cannot read {exc.filename}: {exc.strerror}; pass readable PEM files") from None
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        raise RentstackError(f"--tls-cert {cert_path} is not a PEM certificate: pass the PEM file "
                             "(-----BEGIN CERTIFICATE-----)") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise RentstackError(f"--tls-key {key_path} is not an unencrypted PEM private key: pass one "
                             "(nginx cannot ask for a passphrase)") from None
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(serialization.Encoding.DER, spki) != \
            cert.public_key().public_bytes(serialization.Encoding.DER, spki):
        raise RentstackError(f"--tls-key {key_path} does not belong to --tls-cert {cert_path}: pass the matching pair")
    return TlsFiles(cert_pem=cert_pem, key_pem=key_pem)
