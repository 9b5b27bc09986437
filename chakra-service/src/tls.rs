//! TLS to the server, configured the way libpq is: by `sslmode` and `sslrootcert` in the
//! database URL, so a URL that works with psql works here.
//!
//! | `sslmode`     | TLS                         | server certificate checked                      |
//! |---------------|-----------------------------|-------------------------------------------------|
//! | `disable`     | never                       | -                                               |
//! | `allow`       | if refused without it       | only against `sslrootcert`, when one is given   |
//! | `prefer`      | when the server offers it   | only against `sslrootcert`, when one is given   |
//! | `require`     | always                      | only against `sslrootcert`, when one is given   |
//! | `verify-ca`   | always                      | chain, against `sslrootcert` or Mozilla's roots |
//! | `verify-full` | always                      | chain and host name, as `verify-ca`             |
//!
//! `sslrootcert=system` (libpq 16) trusts the operating system's roots (`SSL_CERT_FILE` and
//! `SSL_CERT_DIR` move them, as with OpenSSL); it makes `verify-full` the default, and a
//! weaker `sslmode` an error, as libpq does.
//!
//! `sslcert` and `sslkey` (PEM files, both or neither) give a client certificate, for
//! servers that authenticate clients by certificate.
//!
//! `prefer` is the default, as in libpq, tokio-postgres, asyncpg and sqlx. Without a root
//! certificate libpq's `prefer` and `require` encrypt but accept any certificate, so do
//! these (the handshake's signatures are still checked); where libpq would look for
//! `~/.postgresql/root.crt`, the verifying modes here use Mozilla's roots (webpki-roots),
//! which serve the hosted servers signed by public CAs.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::Socket;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::{Error, Result};

/// What connections to the server are wrapped in.
pub(crate) type Tls = MakeRustlsConnect;

/// The socket type of a connection, with or without TLS.
pub(crate) type TlsStream = <Tls as MakeTlsConnect<Socket>>::Stream;

/// libpq's `sslmode`, all six that a client can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    Disable,
    /// Without TLS first; again with it if the server turns that down (a `hostnossl …
    /// reject` line, say), as libpq does.
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<SslMode> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(Error::config(
                    "database.url",
                    format!("sslmode={other}: must be one of disable, allow, prefer, require, verify-ca, verify-full"),
                ))
            }
        })
    }

    /// What tokio-postgres is told: it only decides whether to ask for TLS. It has no
    /// `allow`: the first attempt goes without, and [`retries_with_tls`](Self::retries_with_tls).
    pub(crate) fn for_tokio_postgres(self) -> PgSslMode {
        match self {
            SslMode::Disable | SslMode::Allow => PgSslMode::Disable,
            SslMode::Prefer => PgSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => PgSslMode::Require,
        }
    }
}

impl SslMode {
    /// Whether a connection the server turned down is tried again over TLS (`allow`).
    pub(crate) fn retries_with_tls(self) -> bool {
        self == SslMode::Allow
    }
}

/// The TLS settings of a database URL, taken out of it: tokio-postgres knows neither
/// `verify-ca`/`verify-full` nor `sslrootcert`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsSettings {
    pub(crate) mode: SslMode,
    pub(crate) root_cert: Option<String>,
    /// The client's certificate chain and its key.
    pub(crate) client_cert: Option<String>,
    pub(crate) client_key: Option<String>,
}

/// Splits `url` (a `postgresql://` URL or a `key=value` string) into the settings
/// tokio-postgres parses and the TLS ones.
pub(crate) fn split_url(url: &str) -> Result<(String, TlsSettings)> {
    let mut mode = None;
    let (mut root_cert, mut client_cert, mut client_key) = (None, None, None);
    let mut take = |key: &str, value: &str| -> Result<bool> {
        match key {
            "sslmode" => mode = Some(SslMode::parse(value)?),
            "sslrootcert" => root_cert = Some(value.to_owned()),
            "sslcert" => client_cert = Some(value.to_owned()),
            "sslkey" => client_key = Some(value.to_owned()),
            _ => return Ok(false),
        }
        Ok(true)
    };
    let rest = match url.starts_with("postgres") && url.contains("://") {
        true => {
            // A `?` before the query would be percent-encoded, so the first one starts it.
            let (base, query) = url.split_once('?').unwrap_or((url, ""));
            let mut kept = Vec::new();
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                let value = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
                if !take(key, &value)? {
                    kept.push(pair);
                }
            }
            match kept.is_empty() {
                true => base.to_owned(),
                false => format!("{base}?{}", kept.join("&")),
            }
        }
        false => {
            let mut kept = Vec::new();
            for pair in url.split_whitespace() {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                if !take(key.trim(), value.trim_matches('\''))? {
                    kept.push(pair);
                }
            }
            kept.join(" ")
        }
    };
    let system = root_cert.as_deref() == Some(SYSTEM_ROOTS);
    let mode = match (mode, system) {
        (None, true) => SslMode::VerifyFull,
        (Some(weaker), true) if weaker != SslMode::VerifyFull => {
            return Err(Error::config(
                "database.url",
                "sslrootcert=system goes with sslmode=verify-full (its default), as in libpq: \
                 trusting the system's roots means checking the server's name against them",
            ))
        }
        (mode, _) => mode.unwrap_or(SslMode::Prefer),
    };
    Ok((rest, TlsSettings { mode, root_cert, client_cert, client_key }))
}

impl TlsSettings {
    /// The TLS connector these settings ask for: its certificate checks, and the roots
    /// they trust (read now, so a bad file is a configuration error, not a failed connect).
    pub(crate) fn connector(&self) -> Result<Tls> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = match &self.root_cert {
            Some(system) if system == SYSTEM_ROOTS => Some(system_roots()?),
            Some(path) => Some(read_roots(path)?),
            None if matches!(self.mode, SslMode::VerifyCa | SslMode::VerifyFull) => {
                Some(RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() })
            }
            None => None,
        };
        let verifier: Arc<dyn ServerCertVerifier> = match roots {
            None => Arc::new(Lenient { chain: None, provider: provider.clone() }),
            Some(roots) => {
                let full = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| Error::config("database.url", format!("sslrootcert: {e}")))?;
                match self.mode {
                    SslMode::VerifyFull => full,
                    _ => Arc::new(Lenient { chain: Some(full), provider: provider.clone() }),
                }
            }
        };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::config("database.url", format!("TLS: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match (&self.client_cert, &self.client_key) {
            (None, None) => config.with_no_client_auth(),
            (Some(cert), Some(key)) => config
                .with_client_auth_cert(read_certs(cert, "sslcert")?, read_key(key)?)
                .map_err(|e| Error::config("database.url", format!("sslcert={cert} with sslkey={key}: {e}")))?,
            (Some(_), None) | (None, Some(_)) => {
                return Err(Error::config("database.url", "sslcert and sslkey go together: give both or neither"))
            }
        };
        Ok(MakeRustlsConnect::new(config))
    }
}

/// `sslrootcert`'s value for the operating system's trusted roots.
const SYSTEM_ROOTS: &str = "system";

/// The operating system's trusted roots; none found is a configuration error.
fn system_roots() -> Result<RootCertStore> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    match (added, found.errors.first()) {
        (0, Some(e)) => Err(Error::config("database.url", format!("sslrootcert=system: {e}"))),
        (0, None) => Err(Error::config("database.url", "sslrootcert=system: the system has no trusted certificates")),
        _ => Ok(roots),
    }
}

/// The certificates of a PEM file, as trust anchors; a file that cannot be read or holds
/// none is a configuration error naming it.
fn read_roots(path: &str) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(read_certs(path, "sslrootcert")?);
    match added {
        0 => Err(Error::config("database.url", format!("sslrootcert={path}: no usable certificate in the file"))),
        _ => Ok(roots),
    }
}

/// The certificates of the PEM file `path`, given as `key`; none is an error.
fn read_certs(path: &str, key: &str) -> Result<Vec<CertificateDer<'static>>> {
    let bad = |why: String| Error::config("database.url", format!("{key}={path}: {why}"));
    let certs = CertificateDer::pem_file_iter(Path::new(path))
        .map_err(|e| bad(e.to_string()))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    match certs.is_empty() {
        true => Err(bad("no usable certificate in the file".into())),
        false => Ok(certs),
    }
}

/// The private key in the PEM file `path` (`sslkey`).
fn read_key(path: &str) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(Path::new(path))
        .map_err(|e| Error::config("database.url", format!("sslkey={path}: {e}")))
}

/// The checks short of `verify-full`. Without `chain` (libpq's `prefer` and `require`
/// without a root certificate) any certificate is taken: the connection is encrypted, not
/// authenticated. With it (`verify-ca`, or those two given `sslrootcert`) the certificate
/// must chain to a root but may be issued for another name: rustls checks the chain before
/// the name, so it reports a name mismatch only for a good chain. Either way the handshake
/// must be signed by the certificate's key, checked as rustls' own verifier does.
struct Lenient {
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else { return Ok(ServerCertVerified::assertion()) };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

impl fmt::Debug for Lenient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lenient").field("checks_chain", &self.chain.is_some()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_settings_leave_the_url_and_the_rest_stays() {
        let (rest, tls) = split_url(
            "postgresql://u@db.example.com:5433/app?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(rest, "postgresql://u@db.example.com:5433/app?application_name=x");
        assert_eq!(tls.mode, SslMode::VerifyFull);
        assert_eq!(tls.root_cert.as_deref(), Some("/etc/ca.pem"));

        let (rest, tls) = split_url("postgresql://db.example.com/app").unwrap();
        assert_eq!(rest, "postgresql://db.example.com/app");
        assert_eq!(tls, TlsSettings { mode: SslMode::Prefer, root_cert: None, client_cert: None, client_key: None });

        let (rest, tls) = split_url("host=db.example.com sslmode=require user=app").unwrap();
        assert_eq!(rest, "host=db.example.com user=app");
        assert_eq!(tls.mode, SslMode::Require);

        // The system's roots make verify-full the default, as in libpq 16.
        let (_, tls) = split_url("postgresql://db.example.com/app?sslrootcert=system").unwrap();
        assert_eq!((tls.mode, tls.root_cert.as_deref()), (SslMode::VerifyFull, Some("system")));
        let (_, tls) = split_url("postgresql://db/app?sslrootcert=system&sslmode=verify-full").unwrap();
        assert_eq!(tls.mode, SslMode::VerifyFull);

        // libpq's `allow`: tokio-postgres is told not to ask for TLS; the retry is ours.
        let (_, tls) = split_url("postgresql://db/app?sslmode=allow").unwrap();
        assert_eq!(tls.mode, SslMode::Allow);
        assert!(tls.mode.retries_with_tls() && tls.mode.for_tokio_postgres() == PgSslMode::Disable);
        assert!(!SslMode::Prefer.retries_with_tls() && !SslMode::Disable.retries_with_tls());
    }

    #[test]
    fn an_unknown_sslmode_or_a_bad_root_file_is_a_config_error_naming_the_url() {
        for (url, says) in [
            ("postgresql://db/app?sslmode=optional", "sslmode=optional: must be one of disable, allow,"),
            ("postgresql://db/app?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem", "/nonexistent/ca.pem"),
            ("postgresql://db/app?sslmode=verify-ca&sslrootcert=/dev/null", "no usable certificate"),
            ("postgresql://db/app?sslcert=/etc/client.pem", "sslcert and sslkey go together"),
            ("postgresql://db/app?sslmode=require&sslrootcert=system", "sslrootcert=system goes with"),
            ("postgresql://db/app?sslcert=/nonexistent/c.pem&sslkey=/nonexistent/k.pem", "/nonexistent/c.pem"),
        ] {
            let err = split_url(url).and_then(|(_, tls)| tls.connector().map(drop)).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Config, "{url}");
            assert_eq!(err.key(), Some("database.url"), "{url}");
            assert!(err.to_string().contains(says), "{url}: {err}");
        }
    }
}
