//! The web app's built files (`[api] web_dir`, the output of `vite build` in `web/`),
//! served from the API's origin as the router's fallback.
//!
//! # What the fallback may serve
//!
//! Only files of that directory, never API data: the access layer guards the routes, and
//! the fallback is what no route matched. So:
//!
//! - `/api` and everything under `/api/` that no route matched stays the API's JSON 404
//!   (`no_route`): a mistyped API path never answers a page;
//! - a path whose last segment names a file (`/assets/index-3f2a.js`, `/favicon.svg`) is
//!   that file or a 404;
//! - any other path is a client-side route of the single-page app (`/alerts`, `/wells/7`)
//!   and is answered with `index.html`;
//! - only `GET` and `HEAD`; another method is the API's JSON 405.
//!
//! Every answer carries [`CSP`]: scripts, styles, images and requests from this origin
//! only, no inline script, no frames. `index.html` is `no-cache` (a new build is picked up
//! at once); files under `/assets/` have content hashes in their names and are cached for
//! a year.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower_http::services::{ServeDir, ServeFile};

use super::error::ApiError;

/// This origin only, for everything; `data:` images (icons inlined by the build); no
/// inline or evaluated script, no inline style elements, no frames, forms or `<base>`.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                              img-src 'self' data:; font-src 'self'; connect-src 'self'; \
                              manifest-src 'self'; base-uri 'none'; form-action 'none'; \
                              frame-ancestors 'none'";

/// The directory of built files and its `index.html`.
#[derive(Debug, Clone)]
pub(crate) struct WebFiles {
    files: ServeDir,
    index: ServeFile,
}

impl WebFiles {
    pub(crate) fn new(dir: &Path) -> WebFiles {
        WebFiles {
            files: ServeDir::new(dir).append_index_html_on_directories(true),
            index: ServeFile::new(dir.join("index.html")),
        }
    }
}

/// Whether a path belongs to the API (never answered with a file).
fn is_api(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

/// Whether the last segment of a path names a file (has an extension).
fn names_file(path: &str) -> bool {
    path.rsplit('/')
        .next()
        .is_some_and(|last| last.contains('.'))
}

/// The fallback: a file, `index.html` for a client-side route, or the API's JSON error.
pub(crate) async fn fallback(web: WebFiles, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    if is_api(&path) {
        return super::error::no_route(request.method().clone(), request.uri().clone())
            .await
            .into_response();
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return ApiError::MethodNotAllowed {
            method: request.method().clone(),
            path,
        }
        .into_response();
    }
    let WebFiles {
        mut files,
        mut index,
    } = web;
    let answer = if names_file(&path) {
        files.try_call(request).await
    } else {
        index.try_call(request).await
    };
    let mut response = match answer {
        Ok(response) => response.map(Body::new),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            (StatusCode::NOT_FOUND, "not found").into_response()
        }
        Err(error) => return ApiError::Internal(Box::new(error)).into_response(),
    };
    let cache = if path.starts_with("/assets/") && response.status().is_success() {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// The directory a configured `web_dir` names, checked at start-up: it must hold an
/// `index.html` (a missing build is a configuration error, not a blank page).
pub fn check_web_dir(dir: &Path) -> Result<PathBuf, String> {
    let index = dir.join("index.html");
    if index.is_file() {
        Ok(dir.to_owned())
    } else {
        Err(format!(
            "{} has no index.html: build the web app first (`npm run build` in web/)",
            dir.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths_and_file_names_are_told_apart() {
        assert!(is_api("/api"));
        assert!(is_api("/api/nope"));
        assert!(!is_api("/apiary"));
        assert!(!is_api("/alerts"));
        assert!(names_file("/assets/index-abc.js"));
        assert!(names_file("/favicon.svg"));
        assert!(!names_file("/wells/7"));
        assert!(!names_file("/"));
    }
}
