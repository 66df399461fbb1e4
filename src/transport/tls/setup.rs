//! # A TLS listener's set-up: from Mosquitto's settings to a rustls `ServerConfig`
//!
//! MQTT runs over any ordered, lossless byte stream (§4.2), and the specification advises
//! TLS for it, on port 8883 (§5.1). This file does the part of TLS that happens once, when a
//! listener starts: it reads the files that the listener's settings name and builds the
//! [`rustls::ServerConfig`] that every connection on that listener then shares (who a
//! client is, by its certificate, is `identity.rs`). Nothing here touches a socket.
//!
//! Mosquitto 2.0.11 does the same with OpenSSL in `src/net.c`: `net__tls_server_ctx` (the
//! TLS versions), `net__tls_load_verify` (`cafile`, `capath`) and `net__load_certificates`
//! (`require_certificate`, `certfile`, `keyfile`). Setting by setting:
//!
//! | setting               | here                             | Mosquitto's OpenSSL call                      |
//! |-----------------------|----------------------------------|-----------------------------------------------|
//! | `certfile`            | `read_certificates`              | `SSL_CTX_use_certificate_chain_file`          |
//! | `keyfile`             | `read_private_key`, `pair_key_with_chain` | `SSL_CTX_use_PrivateKey_file`, `SSL_CTX_check_private_key` |
//! | `cafile`, `capath`    | `read_roots`                     | `SSL_CTX_load_verify_file`, `SSL_CTX_load_verify_dir` |
//! | `require_certificate` | `client_verifier`                | `SSL_CTX_set_verify`: `SSL_VERIFY_PEER` and `SSL_VERIFY_FAIL_IF_NO_PEER_CERT`, or `SSL_VERIFY_NONE` |
//! | `tls_version`         | `protocol_versions`              | `SSL_CTX_set_options(… SSL_OP_NO_TLSv1_1 …)`  |
//!
//! Where mqttd differs, it is stricter at start-up: a listener that could never let a
//! client in is refused, naming the setting, rather than started to refuse every client.
//!
//! - `require_certificate true` without `cafile` or `capath`: Mosquitto starts, and every
//!   handshake fails, since no client certificate can be checked against nothing.
//! - `use_identity_as_username` or `use_subject_as_username` without `require_certificate`:
//!   Mosquitto starts, asks no client for a certificate, and so refuses every CONNECT with
//!   return code 0x04 (`handle__connect` in `src/handle_connect.c`).
//! - `capath` is read now: every regular file in it that holds PEM certificates. OpenSSL
//!   keeps only the directory's name and looks in it during each handshake, for files named
//!   by a hash of the issuer (made by `openssl rehash`); here no rehash is needed, and a
//!   directory without a certificate is an error at once.
//! - rustls has no TLS 1.1 (it is obsolete, RFC 8996), so `tls_version tlsv1.1` offers TLS
//!   1.2 and 1.3, with a warning. Without `tls_version`, Mosquitto 2.0.11's code also
//!   accepts TLS 1.1 (unless the system's OpenSSL configuration forbids it, as Debian's
//!   does), though its manual says 1.2 and 1.3; here it is 1.2 and 1.3.
//!
//! No cryptography is written here: rustls does the protocol, its `ring` provider the
//! arithmetic, rustls' PEM reader the files, and RustCrypto's `x509-cert` the names.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::version::{TLS12, TLS13};
use rustls::{InconsistentKeys, RootCertStore, ServerConfig, SupportedProtocolVersion};

use crate::config::{TlsSettings, TlsVersion};

/// A listener's TLS, ready to use: the configuration each of its connections starts from,
/// and what the broker should log about it.
#[derive(Debug)]
pub struct ServerSetup {
    /// Shared by every connection of the listener: a `rustls::ServerConnection` is made
    /// from it per client. Read-only from here on.
    pub config: Arc<ServerConfig>,
    /// Settings that work, but not as their name promises (`tls_version tlsv1.1`), or that
    /// have no effect (`cafile` without `require_certificate`). Each is one line to log at
    /// start-up.
    pub warnings: Vec<String>,
}

/// Why a TLS listener cannot start: which setting, which file, what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupError {
    /// The setting at fault, as Mosquitto's configuration file spells it.
    pub setting: &'static str,
    /// The file or directory at fault, when there is one: the setting's own path, or for
    /// `capath` the file inside the directory.
    pub path: Option<PathBuf>,
    /// What is wrong, in words: "no certificate in it", or the operating system's error.
    pub problem: String,
}

impl SetupError {
    fn in_file(setting: &'static str, path: &Path, problem: impl Into<String>) -> SetupError {
        SetupError {
            setting,
            path: Some(path.to_path_buf()),
            problem: problem.into(),
        }
    }

    fn in_setting(setting: &'static str, problem: impl Into<String>) -> SetupError {
        SetupError {
            setting,
            path: None,
            problem: problem.into(),
        }
    }
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) => write!(f, "{} {}: {}", self.setting, path.display(), self.problem),
            None => write!(f, "{} {}", self.setting, self.problem),
        }
    }
}

impl std::error::Error for SetupError {}

/// Everything a TLS listener needs, read once at start-up: the server's certificate chain
/// and key, the authorities whose client certificates it trusts, whether it asks for
/// them, and the TLS versions it speaks. The files are not read again by the returned
/// configuration. (Mosquitto re-reads `certfile` and `keyfile`, not `cafile`, on SIGHUP:
/// `listeners__reload_all_certificates` in `src/mosquitto.c`. Calling this function
/// again gives a fresh configuration for new connections.)
pub fn server_config(settings: &TlsSettings) -> Result<ServerSetup, SetupError> {
    check_combination(settings)?;
    let provider = ring_provider();
    let chain = read_certificates("certfile", &settings.certfile)?;
    let key = read_private_key(&settings.keyfile)?;
    let certified = pair_key_with_chain(chain, key, settings, &provider)?;
    let roots = read_roots(settings)?;
    let mut warnings = unused_roots_warning(settings);
    let verifier = client_verifier(settings, roots, &provider)?;
    let versions = protocol_versions(settings.tls_version, &mut warnings);
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| SetupError::in_setting("tls_version", e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    // Session resumption, ALPN and the rest stay at rustls' defaults: MQTT needs nothing
    // else, and a learner reading `ServerConfig`'s documentation sees what we run with.
    Ok(ServerSetup {
        config: Arc::new(config),
        warnings,
    })
}

/// The cryptography under rustls: *ring*'s, named here rather than taken from the
/// process-wide default, so that the reader sees which one runs and nothing else in the
/// process can change it. *ring* builds with a C compiler alone; rustls' other provider,
/// aws-lc-rs, needs cmake too.
///
/// rustls 0.23.48 marks this function deprecated because *ring* has no post-quantum key
/// exchange (X25519MLKEM768): handshakes use X25519 or the NIST curves, as OpenSSL 3.0
/// under Mosquitto 2.0.11 does. We accept that for a broker written to be read.
pub fn ring_provider() -> Arc<CryptoProvider> {
    #[allow(deprecated)]
    let provider = rustls::crypto::ring::default_provider();
    Arc::new(provider)
}

/// Refuses settings that cannot work together, before any file is read.
fn check_combination(settings: &TlsSettings) -> Result<(), SetupError> {
    let has_roots = settings.cafile.is_some() || settings.capath.is_some();
    if settings.require_certificate && !has_roots {
        return Err(SetupError::in_setting(
            "require_certificate",
            "true needs cafile or capath: the authorities a client certificate is checked against",
        ));
    }
    // A client is asked for a certificate only when one is required, so without
    // require_certificate there would never be a name to take.
    let names = [
        (
            "use_identity_as_username",
            settings.use_identity_as_username,
        ),
        ("use_subject_as_username", settings.use_subject_as_username),
    ];
    for (setting, on) in names {
        if on && !settings.require_certificate {
            return Err(SetupError::in_setting(
                setting,
                "needs require_certificate true: without it no client sends a certificate to take the name from",
            ));
        }
    }
    Ok(())
}

/// Every certificate in the PEM file at `path`, in order, for `certfile` (the server's own
/// first, then the authorities that signed it) and `cafile`. Other sections, such as a
/// private key kept in the same file, are passed over, as OpenSSL does.
fn read_certificates(
    setting: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, SetupError> {
    let certificates = certificates_in(setting, path)?;
    if certificates.is_empty() {
        return Err(SetupError::in_file(setting, path, "no certificate in it"));
    }
    Ok(certificates)
}

/// The certificates in the PEM file at `path`, perhaps none.
fn certificates_in(
    setting: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, SetupError> {
    let file_error = |e: pem::Error| SetupError::in_file(setting, path, pem_problem(e));
    CertificateDer::pem_file_iter(path)
        .map_err(file_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(file_error)
}

/// The first private key in the PEM file `keyfile`: PKCS#8 (`BEGIN PRIVATE KEY`), PKCS#1
/// (`BEGIN RSA PRIVATE KEY`) or SEC1 (`BEGIN EC PRIVATE KEY`), what `openssl` writes. A key
/// encrypted with a pass phrase is not read; Mosquitto would ask for the phrase on the
/// terminal, which a broker started by a service manager does not have.
fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, SetupError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        let problem = match e {
            pem::Error::NoItemsFound => {
                "not a private key (PKCS#8, PKCS#1 or SEC1 PEM expected)".to_owned()
            }
            other => pem_problem(other),
        };
        SetupError::in_file("keyfile", path, problem)
    })
}

/// Words for a PEM reading error: the operating system's own for a file that cannot be
/// read ("No such file or directory (os error 2)"), the parser's for broken PEM.
fn pem_problem(error: pem::Error) -> String {
    match error {
        pem::Error::Io(e) => e.to_string(),
        other => format!("not valid PEM: {other}"),
    }
}

/// Checks that `keyfile` is the key of `certfile`'s first certificate, as Mosquitto's
/// `SSL_CTX_check_private_key` does, and packs the two together. Without this check a
/// mismatch would show only at the first handshake, as a client's "bad signature".
fn pair_key_with_chain(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    settings: &TlsSettings,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, SetupError> {
    let keyfile = &settings.keyfile;
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| SetupError::in_file("keyfile", keyfile, format!("cannot be used: {e}")))?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // `Unknown`: this kind of key cannot tell its public half. The ring provider's keys
        // all can, so this is only for completeness; the handshake would still show it.
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            let problem = format!(
                "does not match certfile {}: the key is not the one the certificate is for",
                settings.certfile.display()
            );
            Err(SetupError::in_file("keyfile", keyfile, problem))
        }
        Err(e) => {
            let problem = format!("its first certificate cannot be read: {e}");
            Err(SetupError::in_file("certfile", &settings.certfile, problem))
        }
    }
}

/// The authorities from `cafile` and `capath`. They are read even when
/// `require_certificate` is false and nothing will use them, as Mosquitto does: a typo in
/// a path should not wait until someone turns client certificates on.
fn read_roots(settings: &TlsSettings) -> Result<RootCertStore, SetupError> {
    let mut roots = RootCertStore::empty();
    if let Some(cafile) = &settings.cafile {
        let certificates = read_certificates("cafile", cafile)?;
        add_roots(&mut roots, "cafile", cafile, certificates)?;
    }
    if let Some(capath) = &settings.capath {
        let files = read_capath(capath)?;
        for (file, certificates) in files {
            add_roots(&mut roots, "capath", &file, certificates)?;
        }
    }
    Ok(roots)
}

/// Adds `certificates` as trust anchors; one that cannot be one is named by its place in
/// `file` (1 for the first).
fn add_roots(
    roots: &mut RootCertStore,
    setting: &'static str,
    file: &Path,
    certificates: Vec<CertificateDer<'static>>,
) -> Result<(), SetupError> {
    for (n, certificate) in certificates.into_iter().enumerate() {
        roots.add(certificate).map_err(|e| {
            let problem = format!("certificate {} cannot be an authority: {e}", n + 1);
            SetupError::in_file(setting, file, problem)
        })?;
    }
    Ok(())
}

/// The certificates of every regular file in the directory `capath` holding any, by file,
/// in name order. Symbolic links are followed (`openssl rehash` makes links such as
/// `a1b2c3d4.0`; an authority found twice is harmless). Files without a certificate,
/// such as a README, are skipped; a file that cannot be read, or holds broken PEM, is an
/// error naming it.
fn read_capath(dir: &Path) -> Result<Vec<(PathBuf, Vec<CertificateDer<'static>>)>, SetupError> {
    let entries =
        fs::read_dir(dir).map_err(|e| SetupError::in_file("capath", dir, e.to_string()))?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| SetupError::in_file("capath", dir, e.to_string()))?;
        let path = entry.path();
        // `fs::metadata` follows links; a dangling link is no file and is skipped.
        if fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            paths.push(path);
        }
    }
    paths.sort();
    let mut found = Vec::new();
    for path in paths {
        let certificates = certificates_in("capath", &path)?;
        if !certificates.is_empty() {
            found.push((path, certificates));
        }
    }
    if found.is_empty() {
        return Err(SetupError::in_file(
            "capath",
            dir,
            "no certificate in any file",
        ));
    }
    Ok(found)
}

/// With `cafile` or `capath` but no `require_certificate`, the authorities are read and
/// never used, as in Mosquitto; say so, since setting `cafile` alone looks like it turns
/// client certificates on.
fn unused_roots_warning(settings: &TlsSettings) -> Vec<String> {
    let has_roots = settings.cafile.is_some() || settings.capath.is_some();
    if has_roots && !settings.require_certificate {
        let warning = "cafile and capath are read but not used: require_certificate is false, \
                       so clients are not asked for a certificate";
        return vec![warning.to_owned()];
    }
    Vec::new()
}

/// Who checks a client's certificate. With `require_certificate`, the server asks for one
/// during the handshake and refuses a client that sends none, or one that no authority of
/// `roots` signed (directly or through intermediates the client sends along). Without it,
/// no certificate is asked for at all (Mosquitto's `SSL_VERIFY_NONE`).
fn client_verifier(
    settings: &TlsSettings,
    roots: RootCertStore,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, SetupError> {
    if !settings.require_certificate {
        return Ok(WebPkiClientVerifier::no_client_auth());
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
        .build()
        .map_err(|e| {
            let problem = format!("true, but no client certificate can be checked: {e}");
            SetupError::in_setting("require_certificate", problem)
        })
}

/// TLS 1.3 and 1.2: the versions rustls has.
static TLS_1_2_AND_1_3: &[&SupportedProtocolVersion] = &[&TLS13, &TLS12];

/// TLS 1.3 alone, for `tls_version tlsv1.3`.
static TLS_1_3_ONLY: &[&SupportedProtocolVersion] = &[&TLS13];

/// The versions a listener speaks: from `tls_version`, the oldest it accepts, up to 1.3.
fn protocol_versions(
    oldest: Option<TlsVersion>,
    warnings: &mut Vec<String>,
) -> &'static [&'static SupportedProtocolVersion] {
    match oldest {
        Some(TlsVersion::V1_3) => TLS_1_3_ONLY,
        None | Some(TlsVersion::V1_2) => TLS_1_2_AND_1_3,
        Some(TlsVersion::V1_1) => {
            // Simplified: rustls has no TLS 1.1, so a client that speaks nothing newer
            // cannot connect, where Mosquitto would let it.
            warnings.push(
                "tls_version tlsv1.1: TLS 1.1 is not available (rustls has none), \
                 so this listener accepts TLS 1.2 and 1.3, as for tlsv1.2"
                    .to_owned(),
            );
            TLS_1_2_AND_1_3
        }
    }
}

// ---------------------------------------------------------------------------------------
// Who a client is, from its certificate.

#[cfg(test)]
#[path = "../../../tests/common/certs.rs"]
#[allow(dead_code)] // the integration tests use all of it, these tests only part
mod certs;

#[cfg(test)]
mod tests {
    use rustls::pki_types::ServerName;
    use rustls::{
        ClientConfig, ClientConnection, Connection, HandshakeKind, ProtocolVersion,
        ServerConnection,
    };

    use super::certs::{make_certs, TestCerts, CLIENT_NAME, CLIENT_SUBJECT};
    use super::*;
    use crate::transport::tls::identity::identity;

    /// A fresh directory of test certificates under the system's temporary directory,
    /// named after the test and this process, removed when dropped (also when the test
    /// fails).
    struct Fixture {
        dir: PathBuf,
        certs: TestCerts,
    }

    impl Fixture {
        fn new(test: &str) -> Fixture {
            let name = format!("mqttd-tls-{}-{test}", std::process::id());
            let dir = std::env::temp_dir().join(name);
            let _ = fs::remove_dir_all(&dir);
            let certs = make_certs(&dir);
            Fixture { dir, certs }
        }

        /// TLS with the server's certificate and key, nothing else.
        fn settings(&self) -> TlsSettings {
            TlsSettings::new(&self.certs.server_cert, &self.certs.server_key)
        }

        /// TLS that requires a client certificate signed by the test CA.
        fn mutual(&self) -> TlsSettings {
            TlsSettings {
                cafile: Some(self.certs.ca_cert.clone()),
                require_certificate: true,
                ..self.settings()
            }
        }

        /// Writes `contents` to a new file `name` in the fixture's directory.
        fn file(&self, name: &str, contents: &str) -> PathBuf {
            let path = self.dir.join(name);
            fs::write(&path, contents).unwrap();
            path
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }

    /// The error `settings` give, as text.
    fn refusal(settings: &TlsSettings) -> String {
        server_config(settings).unwrap_err().to_string()
    }

    // -----------------------------------------------------------------------------------
    // Reading the files.

    #[test]
    fn a_certificate_and_its_key_make_a_server_config() {
        let fixture = Fixture::new("good");
        let setup = server_config(&fixture.settings()).unwrap();
        assert!(setup.warnings.is_empty(), "{:?}", setup.warnings);
        let setup = server_config(&fixture.mutual()).unwrap();
        assert!(setup.warnings.is_empty(), "{:?}", setup.warnings);
    }

    #[test]
    fn a_certfile_that_cannot_be_read_is_named_with_the_os_error() {
        let fixture = Fixture::new("no-certfile");
        let missing = fixture.dir.join("missing.pem");
        let settings = TlsSettings::new(&missing, &fixture.certs.server_key);
        let error = server_config(&settings).unwrap_err();
        assert_eq!(error.setting, "certfile");
        assert_eq!(error.path.as_deref(), Some(missing.as_path()));
        let expected = format!("certfile {}: No such file or directory", missing.display());
        assert!(error.to_string().starts_with(&expected), "{error}");
    }

    #[test]
    fn a_certfile_without_a_certificate_is_refused() {
        let fixture = Fixture::new("certfile-empty");
        let key = &fixture.certs.server_key;
        let settings = TlsSettings::new(key, key);
        let expected = format!("certfile {}: no certificate in it", key.display());
        assert_eq!(refusal(&settings), expected);
    }

    #[test]
    fn a_certfile_with_broken_pem_is_refused() {
        let fixture = Fixture::new("certfile-broken");
        let broken = "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n";
        let certfile = fixture.file("broken.pem", broken);
        let settings = TlsSettings::new(&certfile, &fixture.certs.server_key);
        let expected = format!("certfile {}: not valid PEM", certfile.display());
        assert!(
            refusal(&settings).starts_with(&expected),
            "{}",
            refusal(&settings)
        );
    }

    #[test]
    fn a_keyfile_that_holds_no_key_is_refused() {
        let fixture = Fixture::new("keyfile-not-key");
        let cert = &fixture.certs.server_cert;
        let settings = TlsSettings::new(cert, cert);
        let expected = format!(
            "keyfile {}: not a private key (PKCS#8, PKCS#1 or SEC1 PEM expected)",
            cert.display()
        );
        assert_eq!(refusal(&settings), expected);
    }

    #[test]
    fn a_keyfile_that_cannot_be_read_is_named() {
        let fixture = Fixture::new("no-keyfile");
        let missing = fixture.dir.join("missing.key");
        let settings = TlsSettings::new(&fixture.certs.server_cert, &missing);
        let error = server_config(&settings).unwrap_err();
        assert_eq!(error.setting, "keyfile");
        assert!(error.problem.contains("os error"), "{error}");
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_refused() {
        let fixture = Fixture::new("mismatch");
        let certs = &fixture.certs;
        let settings = TlsSettings::new(&certs.server_cert, &certs.client_key);
        let expected = format!(
            "keyfile {}: does not match certfile {}",
            certs.client_key.display(),
            certs.server_cert.display()
        );
        assert!(
            refusal(&settings).starts_with(&expected),
            "{}",
            refusal(&settings)
        );
    }

    #[test]
    fn a_cafile_that_cannot_be_read_or_holds_no_certificate_is_refused() {
        let fixture = Fixture::new("cafile");
        let missing = fixture.dir.join("missing-ca.pem");
        let settings = TlsSettings {
            cafile: Some(missing.clone()),
            ..fixture.mutual()
        };
        let expected = format!("cafile {}: No such file", missing.display());
        assert!(
            refusal(&settings).starts_with(&expected),
            "{}",
            refusal(&settings)
        );

        let key = fixture.certs.ca_key.clone();
        let settings = TlsSettings {
            cafile: Some(key.clone()),
            ..fixture.mutual()
        };
        let expected = format!("cafile {}: no certificate in it", key.display());
        assert_eq!(refusal(&settings), expected);
    }

    #[test]
    fn a_cafile_is_read_even_when_no_certificate_is_required() {
        let fixture = Fixture::new("cafile-unused");
        let missing = fixture.dir.join("missing-ca.pem");
        let settings = TlsSettings {
            cafile: Some(missing),
            ..fixture.settings()
        };
        assert!(refusal(&settings).starts_with("cafile "));
    }

    #[test]
    fn a_capath_without_certificates_is_refused() {
        let fixture = Fixture::new("capath-empty");
        let dir = fixture.dir.join("empty");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("README"), "not a certificate\n").unwrap();
        let settings = TlsSettings {
            cafile: None,
            capath: Some(dir.clone()),
            ..fixture.mutual()
        };
        let expected = format!("capath {}: no certificate in any file", dir.display());
        assert_eq!(refusal(&settings), expected);

        let missing = fixture.dir.join("missing");
        let settings = TlsSettings {
            capath: Some(missing.clone()),
            ..settings
        };
        let expected = format!("capath {}: No such file", missing.display());
        assert!(
            refusal(&settings).starts_with(&expected),
            "{}",
            refusal(&settings)
        );
    }

    #[test]
    fn require_certificate_needs_cafile_or_capath() {
        let fixture = Fixture::new("require-no-ca");
        let settings = TlsSettings {
            cafile: None,
            ..fixture.mutual()
        };
        let error = server_config(&settings).unwrap_err();
        assert_eq!(error.setting, "require_certificate");
        let expected = "require_certificate true needs cafile or capath";
        assert!(error.to_string().starts_with(expected), "{error}");
    }

    #[test]
    fn a_name_from_the_certificate_needs_require_certificate() {
        let fixture = Fixture::new("identity-no-require");
        let identity = TlsSettings {
            use_identity_as_username: true,
            ..fixture.settings()
        };
        let expected = "use_identity_as_username needs require_certificate true";
        assert!(
            refusal(&identity).starts_with(expected),
            "{}",
            refusal(&identity)
        );
        let subject = TlsSettings {
            use_subject_as_username: true,
            ..fixture.settings()
        };
        let expected = "use_subject_as_username needs require_certificate true";
        assert!(
            refusal(&subject).starts_with(expected),
            "{}",
            refusal(&subject)
        );
        let both = TlsSettings {
            use_identity_as_username: true,
            use_subject_as_username: true,
            ..fixture.mutual()
        };
        assert!(server_config(&both).is_ok());
    }

    // -----------------------------------------------------------------------------------
    // Handshakes, in memory: a rustls client and a connection of the server config, the
    // bytes each writes handed to the other until both are done or one gives up.

    /// What a finished handshake agreed on.
    #[derive(Debug)]
    struct Agreed {
        version: Option<ProtocolVersion>,
        kind: Option<HandshakeKind>,
        client_certificate: Option<CertificateDer<'static>>,
    }

    /// A client that trusts the test CA, speaks `versions`, and presents `certificate`
    /// (certificate and key files) when asked for one.
    fn client(
        certs: &TestCerts,
        certificate: Option<(&Path, &Path)>,
        versions: &[&'static SupportedProtocolVersion],
    ) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(&certs.ca_cert).unwrap())
            .unwrap();
        let builder = ClientConfig::builder_with_provider(ring_provider())
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots);
        let config = match certificate {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = vec![CertificateDer::from_pem_file(cert).unwrap()];
                let key = PrivateKeyDer::from_pem_file(key).unwrap();
                builder.with_client_auth_cert(chain, key).unwrap()
            }
        };
        Arc::new(config)
    }

    /// Runs a handshake between `client` and `server`; an error says which side failed.
    fn handshake(server: &ServerSetup, client: Arc<ClientConfig>) -> Result<Agreed, String> {
        let name = ServerName::try_from("localhost").unwrap();
        let mut client = Connection::Client(ClientConnection::new(client, name).unwrap());
        let server = ServerConnection::new(Arc::clone(&server.config)).unwrap();
        let mut server = Connection::Server(server);
        let mut rounds = 0;
        while client.is_handshaking() || server.is_handshaking() {
            pass(&mut client, &mut server).map_err(|e| format!("server: {e}"))?;
            pass(&mut server, &mut client).map_err(|e| format!("client: {e}"))?;
            rounds += 1;
            assert!(rounds < 10, "the handshake does not finish");
        }
        let client_certificate = server
            .peer_certificates()
            .map(|c| c[0].clone().into_owned());
        Ok(Agreed {
            version: server.protocol_version(),
            kind: server.handshake_kind(),
            client_certificate,
        })
    }

    /// Hands everything `from` has to send to `to`, which processes it.
    fn pass(from: &mut Connection, to: &mut Connection) -> Result<(), rustls::Error> {
        let mut bytes = Vec::new();
        while from.wants_write() {
            from.write_tls(&mut bytes).unwrap();
        }
        let mut unread = &bytes[..];
        while !unread.is_empty() {
            to.read_tls(&mut unread).unwrap();
            to.process_new_packets()?;
        }
        Ok(())
    }

    const BOTH: &[&SupportedProtocolVersion] = &[&TLS13, &TLS12];

    #[test]
    fn a_client_without_a_certificate_connects_when_none_is_required() {
        let fixture = Fixture::new("hs-plain");
        let setup = server_config(&fixture.settings()).unwrap();
        let agreed = handshake(&setup, client(&fixture.certs, None, BOTH)).unwrap();
        assert_eq!(agreed.version, Some(ProtocolVersion::TLSv1_3));
        assert!(agreed.client_certificate.is_none());
    }

    #[test]
    fn with_cafile_alone_no_certificate_is_asked_for_as_in_mosquitto() {
        let fixture = Fixture::new("hs-cafile-only");
        let settings = TlsSettings {
            require_certificate: false,
            ..fixture.mutual()
        };
        let setup = server_config(&settings).unwrap();
        assert_eq!(setup.warnings.len(), 1, "{:?}", setup.warnings);
        let certs = &fixture.certs;
        let offered = Some((certs.client_cert.as_path(), certs.client_key.as_path()));
        let agreed = handshake(&setup, client(certs, offered, BOTH)).unwrap();
        assert!(agreed.client_certificate.is_none());
    }

    #[test]
    fn a_required_certificate_from_the_ca_is_accepted_and_names_the_client() {
        let fixture = Fixture::new("hs-mutual");
        let certs = &fixture.certs;
        let setup = server_config(&fixture.mutual()).unwrap();
        let offered = Some((certs.client_cert.as_path(), certs.client_key.as_path()));
        for versions in [&[&TLS13][..], &[&TLS12][..]] {
            let agreed = handshake(&setup, client(certs, offered, versions)).unwrap();
            let cert = agreed.client_certificate.unwrap();
            assert_eq!(identity(&cert, false).as_deref(), Some(CLIENT_NAME));
            assert_eq!(identity(&cert, true).as_deref(), Some(CLIENT_SUBJECT));
        }
    }

    #[test]
    fn a_resumed_session_still_names_the_client() {
        let fixture = Fixture::new("hs-resumed");
        let certs = &fixture.certs;
        let setup = server_config(&fixture.mutual()).unwrap();
        let offered = Some((certs.client_cert.as_path(), certs.client_key.as_path()));
        // One client configuration keeps the session tickets of its first handshake.
        let client = client(certs, offered, BOTH);
        let first = handshake(&setup, Arc::clone(&client)).unwrap();
        assert_eq!(first.kind, Some(HandshakeKind::Full));
        let again = handshake(&setup, client).unwrap();
        assert_eq!(again.kind, Some(HandshakeKind::Resumed));
        let cert = again.client_certificate.unwrap();
        assert_eq!(identity(&cert, false).as_deref(), Some(CLIENT_NAME));
    }

    #[test]
    fn a_required_certificate_that_is_missing_fails_the_handshake() {
        let fixture = Fixture::new("hs-missing");
        let setup = server_config(&fixture.mutual()).unwrap();
        for versions in [&[&TLS13][..], &[&TLS12][..]] {
            let error = handshake(&setup, client(&fixture.certs, None, versions)).unwrap_err();
            assert!(error.starts_with("server: "), "{error}");
        }
    }

    #[test]
    fn a_certificate_from_another_ca_fails_the_handshake() {
        let fixture = Fixture::new("hs-wrong-ca");
        let certs = &fixture.certs;
        let setup = server_config(&fixture.mutual()).unwrap();
        let offered = Some((
            certs.wrong_client_cert.as_path(),
            certs.wrong_client_key.as_path(),
        ));
        let error = handshake(&setup, client(certs, offered, BOTH)).unwrap_err();
        assert!(error.starts_with("server: "), "{error}");
        assert!(error.contains("UnknownIssuer"), "{error}");
    }

    #[test]
    fn capath_trusts_every_certificate_file_in_the_directory() {
        let fixture = Fixture::new("hs-capath");
        let certs = &fixture.certs;
        let dir = fixture.dir.join("capath");
        fs::create_dir(&dir).unwrap();
        fs::copy(&certs.ca_cert, dir.join("ca.pem")).unwrap();
        // A name as `openssl rehash` gives, a file without a certificate, a subdirectory.
        fs::copy(&certs.wrong_ca_cert, dir.join("a1b2c3d4.0")).unwrap();
        fs::write(dir.join("README"), "These are the trusted CAs.\n").unwrap();
        fs::create_dir(dir.join("old")).unwrap();
        let settings = TlsSettings {
            cafile: None,
            capath: Some(dir),
            ..fixture.mutual()
        };
        let setup = server_config(&settings).unwrap();
        let clients = [
            (&certs.client_cert, &certs.client_key),
            (&certs.wrong_client_cert, &certs.wrong_client_key),
        ];
        for (cert, key) in clients {
            let offered = Some((cert.as_path(), key.as_path()));
            let agreed = handshake(&setup, client(certs, offered, BOTH)).unwrap();
            assert!(agreed.client_certificate.is_some());
        }
    }

    #[test]
    fn tls_version_1_3_refuses_a_client_that_speaks_only_1_2() {
        let fixture = Fixture::new("hs-v13");
        let settings = TlsSettings {
            tls_version: Some(TlsVersion::V1_3),
            ..fixture.settings()
        };
        let setup = server_config(&settings).unwrap();
        let only_1_2 = client(&fixture.certs, None, &[&TLS12]);
        assert!(handshake(&setup, only_1_2).is_err());
        let agreed = handshake(&setup, client(&fixture.certs, None, BOTH)).unwrap();
        assert_eq!(agreed.version, Some(ProtocolVersion::TLSv1_3));
    }

    #[test]
    fn tls_version_1_2_and_the_default_accept_1_2_and_1_3() {
        let fixture = Fixture::new("hs-v12");
        for tls_version in [None, Some(TlsVersion::V1_2)] {
            let settings = TlsSettings {
                tls_version,
                ..fixture.settings()
            };
            let setup = server_config(&settings).unwrap();
            assert!(setup.warnings.is_empty());
            let only_1_2 = client(&fixture.certs, None, &[&TLS12]);
            let agreed = handshake(&setup, only_1_2).unwrap();
            assert_eq!(agreed.version, Some(ProtocolVersion::TLSv1_2));
        }
    }

    #[test]
    fn tls_version_1_1_warns_and_offers_1_2() {
        let fixture = Fixture::new("hs-v11");
        let settings = TlsSettings {
            tls_version: Some(TlsVersion::V1_1),
            ..fixture.settings()
        };
        let setup = server_config(&settings).unwrap();
        assert_eq!(setup.warnings.len(), 1);
        assert!(setup.warnings[0].starts_with("tls_version tlsv1.1: "));
        let agreed = handshake(&setup, client(&fixture.certs, None, &[&TLS12])).unwrap();
        assert_eq!(agreed.version, Some(ProtocolVersion::TLSv1_2));
    }

    // -----------------------------------------------------------------------------------
    // Names from certificates. Each expected subject below is what
    // `openssl x509 -noout -subject -nameopt RFC2253` (OpenSSL 3.0.22) printed for the same
    // certificate; `-nameopt RFC2253` is the XN_FLAG_RFC2253 that Mosquitto passes.
}
