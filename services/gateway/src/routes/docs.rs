//! The OpenAPI document and the docs page. Swagger UI's assets are compiled into the binary
//! (`vendored`), the validator badge is off, so the page works with no network.

use actix_web::{HttpResponse, web};
use utoipa::OpenApi as _;
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::api::ApiDoc;

pub const OPENAPI_PATH: &str = "/openapi.json";

pub fn configure(cfg: &mut web::ServiceConfig) {
    let doc = ApiDoc::openapi();
    // INVARIANT: the generated document is plain data; serialising it cannot fail.
    let json = serde_json::to_vec(&doc).unwrap_or_default();
    let json = web::Bytes::from(json);
    cfg.service(web::resource(OPENAPI_PATH).route(web::get().to(move || {
        let json = json.clone();
        async move {
            HttpResponse::Ok()
                .content_type("application/json")
                .body(json)
        }
    })))
    .service(web::resource("/docs").route(web::get().to(|| async {
        HttpResponse::PermanentRedirect()
            .insert_header(("Location", "/docs/"))
            .finish()
    })))
    .service(
        SwaggerUi::new("/docs/{_:.*}").config(Config::new([OPENAPI_PATH]).validator_url("none")),
    );
}
