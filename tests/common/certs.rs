//! Test certificates, made fresh each time the tests run, so that no private key lives in
//! the repository: a certificate authority (CA), a server certificate it signed for
//! `localhost` and `127.0.0.1`, a client certificate it signed for "sensor-7", and a second,
//! unrelated CA with a client of its own, to show that a certificate from the wrong CA is
//! refused even when it carries the same name.
//!
//! `tests/data/tls/make-certs.sh` makes the same set with the `openssl` command line, for a
//! learner who wants certificates to try the broker by hand.
//!
//! This file uses only `std` and `rcgen` (no other helper of `tests/common/`), so the unit
//! tests in `src/transport/tls/setup.rs` can include it too, with `#[path]`.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

/// Where [`make_certs`] wrote each file. Every file is PEM; keys are PKCS#8
/// (`-----BEGIN PRIVATE KEY-----`), ECDSA on the P-256 curve.
#[derive(Debug, Clone)]
pub struct TestCerts {
    /// The CA a broker's `cafile` names, so that it trusts `client_cert`.
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    /// The broker's `certfile` and `keyfile`: valid for `localhost` and `127.0.0.1`.
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// A client's certificate, subject `CN=sensor-7,O=Example,C=GB`, signed by the CA.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// Another CA, which nothing above trusts.
    pub wrong_ca_cert: PathBuf,
    pub wrong_ca_key: PathBuf,
    /// A client certificate with the same subject as `client_cert`, signed by the wrong CA.
    pub wrong_client_cert: PathBuf,
    pub wrong_client_key: PathBuf,
}

/// The client's Common Name: what `use_identity_as_username` makes its user name.
pub const CLIENT_NAME: &str = "sensor-7";

/// The client's whole subject as Mosquitto prints it for `use_subject_as_username`
/// (OpenSSL's RFC 2253 form, last name component first).
pub const CLIENT_SUBJECT: &str = "CN=sensor-7,O=Example,C=GB";

/// Makes the CAs, the server and the clients into `dir` (created if missing) and returns
/// where each file is. Panics on failure: this is a test helper.
pub fn make_certs(dir: &Path) -> TestCerts {
    fs::create_dir_all(dir).expect("the certificate directory can be made");
    let write = |name: &str, pem: String| {
        let path = dir.join(name);
        fs::write(&path, pem).expect("a certificate file can be written");
        path
    };

    let ca = new_ca("mqttd test CA");
    let server_key = KeyPair::generate().expect("a key pair");
    let server = server_params()
        .signed_by(&server_key, &ca)
        .expect("the CA signs the server certificate");
    let client_key = KeyPair::generate().expect("a key pair");
    let client = client_params()
        .signed_by(&client_key, &ca)
        .expect("the CA signs the client certificate");

    let wrong_ca = new_ca("mqttd unrelated CA");
    let wrong_client_key = KeyPair::generate().expect("a key pair");
    let wrong_client = client_params()
        .signed_by(&wrong_client_key, &wrong_ca)
        .expect("the wrong CA signs its client certificate");

    TestCerts {
        ca_cert: write("ca.pem", ca.pem()),
        ca_key: write("ca.key", ca.key().serialize_pem()),
        server_cert: write("server.pem", server.pem()),
        server_key: write("server.key", server_key.serialize_pem()),
        client_cert: write("client.pem", client.pem()),
        client_key: write("client.key", client_key.serialize_pem()),
        wrong_ca_cert: write("wrong-ca.pem", wrong_ca.pem()),
        wrong_ca_key: write("wrong-ca.key", wrong_ca.key().serialize_pem()),
        wrong_client_cert: write("wrong-client.pem", wrong_client.pem()),
        wrong_client_key: write("wrong-client.key", wrong_client_key.serialize_pem()),
    }
}

/// A self-signed CA certificate with its key: allowed to sign certificates, nothing else.
fn new_ca(common_name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().expect("a key pair");
    CertifiedIssuer::self_signed(params, key).expect("a self-signed CA certificate")
}

/// The server's certificate: the names a client may dial it by, in the Subject
/// Alternative Name extension (which is what TLS clients check, not the Common Name).
fn server_params() -> CertificateParams {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let mut params = CertificateParams::new(names).expect("valid server names");
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params
}

/// A client's certificate. The subject is written country first, as `openssl req -subj
/// "/C=GB/O=Example/CN=sensor-7"` writes it; RFC 2253 prints it the other way round.
fn client_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    let country = DnValue::PrintableString("GB".try_into().expect("printable"));
    params.distinguished_name.push(DnType::CountryName, country);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Example");
    params
        .distinguished_name
        .push(DnType::CommonName, CLIENT_NAME);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params
}
