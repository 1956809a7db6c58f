//! Content negotiation: one DTO, two wire formats.
//!
//! Request bodies are read by [`Negotiated<T>`] as JSON or XML per `Content-Type`; responses
//! are written by [`Reply<T>`] as JSON or XML per `Accept`. The XML mapping is in [`crate::xml`].

use actix_web::body::BoxBody;
use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::{FromRequest, HttpRequest, HttpResponse, Responder};
use futures::StreamExt as _;
use futures::future::LocalBoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::xml;

/// Default request body limit when the app registers no [`BodyLimit`].
const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// The wire format of a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Xml,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Xml => "application/xml",
        }
    }

    /// The format the client prefers per `Accept` (q-values honoured). JSON when the header is
    /// absent or names neither format: clients that accept anything get JSON.
    pub fn from_accept(headers: &HeaderMap) -> Format {
        let mut best = (Format::Json, 0.0_f32, false);
        for value in headers.get_all(header::ACCEPT) {
            let Ok(value) = value.to_str() else { continue };
            for part in value.split(',') {
                let mut pieces = part.split(';');
                let media = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
                let q = pieces
                    .filter_map(|p| p.trim().strip_prefix("q="))
                    .find_map(|q| q.trim().parse::<f32>().ok())
                    .unwrap_or(1.0);
                let format = match media.as_str() {
                    "application/xml" | "text/xml" => Format::Xml,
                    "application/json" => Format::Json,
                    _ => continue,
                };
                // Explicit media types beat */*; on equal q the first listed wins.
                if q > 0.0 && (!best.2 || q > best.1) {
                    best = (format, q, true);
                }
            }
        }
        best.0
    }

    /// The format of a request body per `Content-Type`; a missing header means JSON (what
    /// OpenAI clients send).
    pub fn from_content_type(headers: &HeaderMap) -> Result<Format, ApiError> {
        let Some(value) = headers.get(header::CONTENT_TYPE) else {
            return Ok(Format::Json);
        };
        let media = value
            .to_str()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/json" => Ok(Format::Json),
            "application/xml" | "text/xml" => Ok(Format::Xml),
            _ if media.ends_with("+json") => Ok(Format::Json),
            _ if media.ends_with("+xml") => Ok(Format::Xml),
            _ => Err(ApiError::UnsupportedMediaType {
                content_type: String::from_utf8_lossy(value.as_bytes()).into_owned(),
            }),
        }
    }

    /// Encodes a DTO; the XML root element is its schema name in snake_case.
    pub fn encode<T: Serialize + ToSchema>(self, value: &T) -> Result<Vec<u8>, ApiError> {
        match self {
            Format::Json => serde_json::to_vec(value).map_err(|e| ApiError::internal(e)),
            Format::Xml => xml::to_xml(&xml::snake_case(&T::name()), value)
                .map(String::into_bytes)
                .map_err(|e| ApiError::internal(e)),
        }
    }

    /// Decodes a body into a DTO; errors name the offending field.
    pub fn decode<T: DeserializeOwned>(self, body: &[u8]) -> Result<T, ApiError> {
        match self {
            Format::Json => {
                let mut de = serde_json::Deserializer::from_slice(body);
                let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
                    let path = e.path().to_string();
                    ApiError::invalid(
                        "invalid_json",
                        format!("request body is not valid: {}", e.inner()),
                        (path != ".").then_some(path),
                    )
                })?;
                de.end().map_err(|e| {
                    ApiError::invalid(
                        "invalid_json",
                        format!("trailing data after the JSON body: {e}"),
                        None,
                    )
                })?;
                Ok(value)
            }
            Format::Xml => xml::from_xml(body).map_err(|e| {
                ApiError::invalid(
                    "invalid_xml",
                    format!("request body is not valid: {}", e.error),
                    e.path,
                )
            }),
        }
    }
}

/// Request body limit in bytes, registered as app data.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// A request body in JSON or XML, decoded into the same DTO.
#[derive(Debug)]
pub struct Negotiated<T>(pub T);

impl<T> Negotiated<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Negotiated<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let format = Format::from_content_type(req.headers());
        let limit = req
            .app_data::<BodyLimit>()
            .map_or(DEFAULT_BODY_LIMIT, |l| l.0);
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            let format = format?;
            if declared.is_some_and(|len| len > limit) {
                return Err(ApiError::PayloadTooLarge { limit });
            }
            let mut body = bytes::BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| {
                    ApiError::invalid(
                        "invalid_body",
                        format!("request body could not be read: {e}"),
                        None,
                    )
                })?;
                if body.len() + chunk.len() > limit {
                    return Err(ApiError::PayloadTooLarge { limit });
                }
                body.extend_from_slice(&chunk);
            }
            if body.iter().all(u8::is_ascii_whitespace) {
                return Err(ApiError::invalid(
                    "missing_body",
                    "a request body is required",
                    None,
                ));
            }
            format.decode(&body).map(Negotiated)
        })
    }
}

/// Marks a response whose status and body a handler chose (e.g. `/readyz` answering 503 with
/// its checks), so the error renderer leaves it alone.
#[derive(Debug, Clone, Copy)]
pub struct Deliberate;

/// A DTO answered in the format the client accepts.
pub struct Reply<T> {
    status: StatusCode,
    body: T,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl<T> Reply<T> {
    pub fn ok(body: T) -> Self {
        Reply::with_status(StatusCode::OK, body)
    }

    pub fn created(body: T) -> Self {
        Reply::with_status(StatusCode::CREATED, body)
    }

    pub fn with_status(status: StatusCode, body: T) -> Self {
        Reply {
            status,
            body,
            headers: Vec::new(),
        }
    }

    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }
}

impl<T: Serialize + ToSchema> Responder for Reply<T> {
    type Body = BoxBody;

    fn respond_to(self, req: &HttpRequest) -> HttpResponse {
        let format = Format::from_accept(req.headers());
        match format.encode(&self.body) {
            Ok(bytes) => {
                let mut res = HttpResponse::build(self.status);
                res.content_type(format.content_type());
                for (name, value) in self.headers {
                    res.insert_header((name, value));
                }
                let mut res = res.body(bytes);
                res.extensions_mut().insert(Deliberate);
                res
            }
            Err(e) => actix_web::ResponseError::error_response(&e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> Format {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_str(value).expect("header"),
        );
        Format::from_accept(&headers)
    }

    #[test]
    fn accept_negotiation() {
        let cases = [
            ("application/xml", Format::Xml),
            ("text/xml", Format::Xml),
            ("application/json", Format::Json),
            ("*/*", Format::Json),
            ("text/html", Format::Json),
            ("application/json;q=0.5, application/xml", Format::Xml),
            (
                "application/xml;q=0.2, application/json;q=0.9",
                Format::Json,
            ),
            ("application/xml, application/json", Format::Xml),
            ("application/xml;q=0", Format::Json),
        ];
        for (header, expected) in cases {
            assert_eq!(accept(header), expected, "Accept: {header}");
        }
        assert_eq!(Format::from_accept(&HeaderMap::new()), Format::Json);
    }

    #[test]
    fn content_type_negotiation() {
        let cases = [
            ("application/json; charset=utf-8", Some(Format::Json)),
            ("application/xml", Some(Format::Xml)),
            ("text/xml; charset=UTF-8", Some(Format::Xml)),
            ("application/merge-patch+json", Some(Format::Json)),
            ("text/plain", None),
            ("application/x-www-form-urlencoded", None),
        ];
        for (value, expected) in cases {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_str(value).expect("header"),
            );
            assert_eq!(
                Format::from_content_type(&headers).ok(),
                expected,
                "Content-Type: {value}"
            );
        }
    }
}
