//! A small client for the Confluent Schema Registry REST API: register a schema under a
//! subject, look one up, fetch a schema by id.
//!
//! The calls are blocking (ureq, HTTP/1.1, plain `http://` only). They are rare: a sink
//! registers its schema once, a source fetches each writer schema id once and caches it, so
//! a call briefly holds the thread that decodes or encodes rather than needing a runtime of
//! its own. Several URLs may be given (comma-separated, as Confluent's clients accept); a
//! call tries them in order until one answers.

use std::io;
use std::time::Duration;

use serde_json::Value as Json;

use crate::{ConnectorError, Result};

/// The content type of the registry's API.
const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";
const ACCEPT: &str = "application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json, application/json";

/// A schema as stored in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredSchema {
    /// `AVRO` (the default when the registry does not say), `PROTOBUF` or `JSON`.
    pub schema_type: String,
    /// The schema text.
    pub schema: String,
}

/// A Confluent Schema Registry at one or more URLs.
pub(crate) struct Registry {
    urls: Vec<String>,
    /// The `Authorization` header value, if any.
    authorization: Option<String>,
    agent: ureq::Agent,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("urls", &self.urls).finish_non_exhaustive()
    }
}

impl Registry {
    /// A client for the registry at `urls` (without a trailing `/`), sending `authorization`
    /// as the `Authorization` header.
    pub(crate) fn new(urls: Vec<String>, authorization: Option<String>) -> Self {
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_global(Some(Duration::from_secs(30)))
            .http_status_as_error(false)
            // Confluent's clients do not read proxies from the environment either.
            .proxy(None)
            .build();
        Self { urls, authorization, agent: config.into() }
    }

    /// The registry's URLs, for messages.
    pub(crate) fn urls(&self) -> String {
        self.urls.join(",")
    }

    /// Register `schema` (Avro JSON text) under `subject`; the registry answers with the
    /// schema's id (the existing one when the subject already has the same schema).
    pub(crate) fn register(&self, subject: &str, schema: &str) -> Result<u32> {
        let path = format!("/subjects/{}/versions", encode_path(subject));
        let body = serde_json::json!({ "schema": schema }).to_string();
        let (status, json) = self.call("POST", &path, Some(&body))?;
        match status {
            200 => self.id_of(&path, &json),
            _ => Err(self.failed(&format!("registering the schema under subject '{subject}'"), status, &json)),
        }
    }

    /// The id of `schema` under `subject`, `None` when the subject does not have it.
    pub(crate) fn lookup(&self, subject: &str, schema: &str) -> Result<Option<u32>> {
        let path = format!("/subjects/{}", encode_path(subject));
        let body = serde_json::json!({ "schema": schema }).to_string();
        let (status, json) = self.call("POST", &path, Some(&body))?;
        match status {
            200 => self.id_of(&path, &json).map(Some),
            404 => Ok(None),
            _ => Err(self.failed(&format!("looking up the schema under subject '{subject}'"), status, &json)),
        }
    }

    /// The schema with id `id`, `None` when the registry has no such id.
    pub(crate) fn schema(&self, id: u32) -> Result<Option<StoredSchema>> {
        let path = format!("/schemas/ids/{id}");
        let (status, json) = self.call("GET", &path, None)?;
        match status {
            200 => {
                let schema = json.get("schema").and_then(Json::as_str).ok_or_else(|| self.malformed(&path, &json))?;
                let schema_type = json.get("schemaType").and_then(Json::as_str).unwrap_or("AVRO");
                Ok(Some(StoredSchema { schema_type: schema_type.to_string(), schema: schema.to_string() }))
            }
            404 => Ok(None),
            _ => Err(self.failed(&format!("fetching schema id {id}"), status, &json)),
        }
    }

    fn id_of(&self, path: &str, json: &Json) -> Result<u32> {
        json.get("id")
            .and_then(Json::as_u64)
            .and_then(|id| u32::try_from(id).ok())
            .ok_or_else(|| self.malformed(path, json))
    }

    /// One request, to the first URL that answers: the status and the body as JSON (`Null`
    /// when the body is not JSON).
    fn call(&self, method: &str, path: &str, body: Option<&str>) -> Result<(u16, Json)> {
        let mut failures = Vec::new();
        for url in &self.urls {
            let target = format!("{url}{path}");
            let sent = match body {
                None => {
                    let mut request = self.agent.get(&target).header("Accept", ACCEPT);
                    if let Some(auth) = &self.authorization {
                        request = request.header("Authorization", auth);
                    }
                    request.call()
                }
                Some(body) => {
                    let mut request =
                        self.agent.post(&target).header("Accept", ACCEPT).header("Content-Type", CONTENT_TYPE);
                    if let Some(auth) = &self.authorization {
                        request = request.header("Authorization", auth);
                    }
                    request.send(body)
                }
            };
            match sent {
                Ok(mut response) => {
                    let status = response.status().as_u16();
                    let text = response.body_mut().read_to_string().map_err(|e| {
                        ConnectorError::io(format!("schema registry {url}: {method} {path}"), io::Error::other(e))
                    })?;
                    return Ok((status, serde_json::from_str(&text).unwrap_or(Json::Null)));
                }
                Err(e) => failures.push(format!("{url}: {e}")),
            }
        }
        Err(ConnectorError::io(
            format!("schema registry {}: {method} {path}", self.urls()),
            io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("cannot reach the registry ({})", failures.join("; ")),
            ),
        ))
    }

    fn failed(&self, what: &str, status: u16, json: &Json) -> ConnectorError {
        let message = json.get("message").and_then(Json::as_str).unwrap_or("no message");
        let code =
            json.get("error_code").and_then(Json::as_i64).map(|c| format!(" (error code {c})")).unwrap_or_default();
        ConnectorError::io(
            format!("schema registry {}", self.urls()),
            io::Error::other(format!("{what}: HTTP {status}{code}: {message}")),
        )
    }

    fn malformed(&self, path: &str, json: &Json) -> ConnectorError {
        ConnectorError::io(
            format!("schema registry {}", self.urls()),
            io::Error::new(io::ErrorKind::InvalidData, format!("unexpected answer to {path}: {json}")),
        )
    }
}

/// Percent-encode a path segment (a subject may hold any character).
fn encode_path(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Standard base64 with padding (for the basic-auth header).
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"user:pa ss"), "dXNlcjpwYSBzcw==");
    }

    #[test]
    fn subjects_are_percent_encoded() {
        assert_eq!(encode_path("orders-value"), "orders-value");
        assert_eq!(encode_path("a/b c"), "a%2Fb%20c");
    }
}
