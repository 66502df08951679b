//! Who may connect: anyone (trust, the default on loopback) or users with passwords checked
//! by SCRAM-SHA-256; and TLS when a certificate and key are given.

use std::collections::HashMap;
use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion_postgres::pgwire::api::auth::noop::NoopStartupHandler;
use datafusion_postgres::pgwire::api::auth::sasl::scram::{gen_salted_password, ScramAuth};
use datafusion_postgres::pgwire::api::auth::sasl::SASLAuthStartupHandler;
use datafusion_postgres::pgwire::api::auth::{
    AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler,
};
use datafusion_postgres::pgwire::api::{ClientInfo, ConnectionManager};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use datafusion_postgres::pgwire::tokio::tokio_rustls::rustls;
use datafusion_postgres::pgwire::tokio::TlsAcceptor;
use futures::Sink;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::ServerError;

/// PBKDF2 iterations of the stored SCRAM keys (Postgres' default).
const ITERATIONS: usize = 4096;

/// How clients authenticate.
#[derive(Debug, Clone)]
pub enum Auth {
    /// Anyone may connect (for loopback).
    Trust,
    /// SCRAM-SHA-256 against these users.
    Scram(Arc<Users>),
}

/// Users and their SCRAM keys.
#[derive(Debug, Default)]
pub struct Users {
    keys: HashMap<String, (Vec<u8>, Vec<u8>)>,
}

impl Users {
    /// Users from `name:password` pairs.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = &'a str>) -> Result<Self, ServerError> {
        let mut keys = HashMap::new();
        for pair in pairs {
            let (name, password) = pair.split_once(':').ok_or_else(|| {
                ServerError::Usage(format!(
                    "a user is written name:password, got '{}'",
                    pair.split(':').next().unwrap_or("")
                ))
            })?;
            let salt: [u8; 16] = rand::random();
            keys.insert(name.trim().to_string(), (salt.to_vec(), gen_salted_password(password, &salt, ITERATIONS)));
        }
        if keys.is_empty() {
            return Err(ServerError::Usage(
                "--auth scram needs at least one user (--user name:password or --users-file)".into(),
            ));
        }
        Ok(Self { keys })
    }

    /// Users from a file of `name:password` lines (`#` comments and blank lines skipped).
    pub fn from_file(path: &Path) -> Result<Self, ServerError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ServerError::Io { context: path.display().to_string(), source: e })?;
        Self::from_pairs(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')))
    }
}

#[async_trait]
impl AuthSource for Users {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let user = login.user().unwrap_or_default();
        match self.keys.get(user) {
            Some((salt, key)) => Ok(Password::new(Some(salt.clone()), key.clone())),
            None => Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                "FATAL".into(),
                "28P01".into(),
                format!("password authentication failed for user \"{user}\""),
            )))),
        }
    }
}

/// The startup handler of one connection.
pub enum Startup {
    /// No authentication.
    Trust(TrustStartup),
    /// SCRAM-SHA-256.
    Scram(Box<SASLAuthStartupHandler<DefaultServerParameterProvider>>),
}

impl Startup {
    /// A handler for a new connection (SCRAM's keeps per-connection state).
    pub fn new(auth: &Auth, connections: &Arc<ConnectionManager>) -> Self {
        match auth {
            Auth::Trust => Self::Trust(TrustStartup { connections: connections.clone() }),
            Auth::Scram(users) => {
                let mut params = DefaultServerParameterProvider::default();
                params.scram_iterations = ITERATIONS;
                Self::Scram(Box::new(
                    SASLAuthStartupHandler::new(Arc::new(params))
                        .with_scram(ScramAuth::new(users.clone()))
                        .with_connection_manager(connections.clone()),
                ))
            }
        }
    }
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match self {
            Self::Trust(h) => h.on_startup(client, message).await,
            Self::Scram(h) => h.on_startup(client, message).await,
        }
    }
}

/// Trust authentication; registers the connection so CancelRequest can find it.
pub struct TrustStartup {
    connections: Arc<ConnectionManager>,
}

#[async_trait]
impl NoopStartupHandler for TrustStartup {
    fn connection_manager(&self) -> Option<Arc<ConnectionManager>> {
        Some(self.connections.clone())
    }
}

/// A TLS acceptor from PEM files (a certificate chain; a PKCS#8, PKCS#1 or SEC1 key).
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, ServerError> {
    let bad = |path: &Path, e: &dyn std::fmt::Display| ServerError::Usage(format!("{}: {e}", path.display()));
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(cert, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(cert, &e))?;
    if certs.is_empty() {
        return Err(bad(cert, &"no certificate in the file"));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, &e))?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| bad(cert, &e))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
